/**
 * The refusal side of the exclusivity rule: when the store reports that an item already has an
 * active exclusive job, this builds the error that names the blocking job and what to do.
 */
import { CofferError } from '../errors/coffer-error.js';
import type { BlockingJob } from '../errors/render.js';
import { describeTrigger, progressPercent, type Job } from './job.js';

/** The blocking job as the refusal carries it; the renderers in errors/ define its shape. */
export type BlockingJobView = BlockingJob;

export function blockingJobView(job: Job, names: { vaultName: string; itemName: string }): BlockingJobView {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    id: job.id,
    operation: job.operation,
    vaultId: job.vaultId,
    vaultName: names.vaultName,
    itemId: job.itemId ?? '',
    itemName: names.itemName,
    state: job.state,
    createdAt: new Date(job.createdAt).toISOString(),
    startedAt: iso(job.startedAt),
    progressPercent: progressPercent(job),
    trigger: describeTrigger(job),
    leaseExpiresAt: iso(job.leaseExpiresAt),
    workerId: job.workerId,
    etaSeconds: job.etaSeconds,
  };
}

/**
 * `requestedVaultId` is the vault the refused trigger was for; when the blocking job sits in
 * another vault (the item was moved) the message says so, because that is the case operators
 * miss.
 */
export function backupInProgressError(
  blocking: BlockingJobView,
  request: { itemName: string; requestedVaultId: string; requestedVaultName: string },
): CofferError {
  const elsewhere = blocking.vaultId !== request.requestedVaultId;
  const where = elsewhere
    ? ` in vault '${blocking.vaultName}' (not '${request.requestedVaultName}': the item was moved, and its job in the old vault still runs)`
    : ` in vault '${blocking.vaultName}'`;
  return CofferError.refusal(
    'UserErrorBackupOperationInProgress',
    `a ${blocking.operation} of item '${request.itemName}' is already ${blocking.state.replace('_', ' ')}: job ${blocking.id}${where}`,
    {
      item: request.itemName,
      vault: request.requestedVaultName,
      blockingJob: blocking,
      blockedInOtherVault: elsewhere,
      actions: ['wait', 'cancel', 'attach'],
    },
  );
}
