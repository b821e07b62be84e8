/**
 * Starting jobs: the use cases behind `coffer backup/restore/check/prune/job retry` and the matching
 * HTTP routes, so both interfaces admit jobs the same way. Admission itself (the exclusivity
 * rule) is the store's.
 */
import { isAbsolute, resolve } from 'node:path';
import { CofferError } from '../errors/coffer-error.js';
import { RETRYABLE_STATES } from '../jobs/job.js';
import type { Item } from '../catalog/store.js';
import type { Admission } from '../jobs/ports.js';
import type { AppContext } from './context.js';

export interface TriggerOptions {
  requestedBy: string;
  /** Claim the job for this process (a foreground run); otherwise it is queued for a worker. */
  claim?: boolean;
}

function claimFor(app: AppContext, opts: TriggerOptions) {
  return opts.claim ? { owner: app.workerId, leaseMs: app.config.leaseMs } : undefined;
}

export async function triggerBackup(
  app: AppContext,
  itemRef: string,
  opts: TriggerOptions & { idempotencyKey?: string | null; limitReadBytesPerSec?: number },
): Promise<Admission & { item: Item }> {
  if (opts.idempotencyKey != null && !/^[\x21-\x7e]{1,200}$/.test(opts.idempotencyKey)) {
    throw new CofferError('InvalidRequest', 'an idempotency key must be 1-200 visible ASCII characters', {
      field: 'idempotencyKey',
    });
  }
  const item = await app.store.getItem(itemRef);
  const admission = await app.store.admit({
    operation: 'backup',
    itemId: item.id,
    vaultId: item.vaultId,
    trigger: 'on-demand',
    requestedBy: opts.requestedBy,
    idempotencyKey: opts.idempotencyKey ?? null,
    params: opts.limitReadBytesPerSec ? { limitReadBytesPerSec: opts.limitReadBytesPerSec } : {},
    claimBy: claimFor(app, opts),
  });
  return { ...admission, item };
}

export async function triggerRestore(
  app: AppContext,
  itemRef: string,
  opts: TriggerOptions & { target: string; point?: string; subpath?: string },
): Promise<Admission> {
  const item = await app.store.getItem(itemRef);
  if (!opts.target || !isAbsolute(resolve(opts.target))) {
    throw new CofferError('RestoreTargetInvalid', 'a restore needs a target directory', { field: 'target' });
  }
  const points = await app.store.listPoints(item.id);
  const wanted = opts.point;
  const point = wanted
    ? points.find((p) => p.id === wanted || (wanted.length >= 8 && p.id.startsWith(wanted)))
    : points[0];
  if (!point) {
    throw new CofferError(
      'PointNotFound',
      wanted
        ? `item '${item.name}' has no recovery point '${wanted}'`
        : `item '${item.name}' has no recovery point yet`,
      { item: item.name, point: wanted ?? null },
    );
  }
  return app.store.admit({
    operation: 'restore',
    itemId: item.id,
    vaultId: point.vaultId,
    trigger: 'on-demand',
    requestedBy: opts.requestedBy,
    params: {
      pointId: point.id,
      target: resolve(opts.target),
      ...(opts.subpath ? { subpath: opts.subpath } : {}),
    },
    claimBy: claimFor(app, opts),
  });
}

export async function triggerCheck(
  app: AppContext,
  vaultRef: string,
  opts: TriggerOptions & { readData: boolean },
): Promise<Admission> {
  const vault = await app.store.getVault(vaultRef);
  return app.store.admit({
    operation: 'check',
    itemId: null,
    vaultId: vault.id,
    trigger: 'on-demand',
    requestedBy: opts.requestedBy,
    params: { readData: opts.readData },
    claimBy: claimFor(app, opts),
  });
}

/**
 * A prune of a vault: retention of every item's points there, then garbage collection. One per
 * vault at a time (the store refuses a second with PruneInProgress).
 */
export async function triggerPrune(
  app: AppContext,
  vaultRef: string,
  opts: TriggerOptions & { dryRun: boolean },
): Promise<Admission> {
  const vault = await app.store.getVault(vaultRef);
  return app.store.admit({
    operation: 'prune',
    itemId: null,
    vaultId: vault.id,
    trigger: 'on-demand',
    requestedBy: opts.requestedBy,
    params: { dryRun: opts.dryRun },
    claimBy: claimFor(app, opts),
  });
}

/** A new job for the same item and operation; a backup goes to the item's current vault. */
export async function retryJob(app: AppContext, jobId: string, opts: TriggerOptions): Promise<Admission> {
  const old = await app.store.getJob(jobId);
  if (!(RETRYABLE_STATES as readonly string[]).includes(old.state)) {
    throw new CofferError(
      'JobNotRetryable',
      `job ${jobId} is ${old.state}; only ${RETRYABLE_STATES.join(', ')} jobs can be retried`,
      {
        jobId,
        state: old.state,
      },
    );
  }
  const vaultId =
    old.operation === 'backup' && old.itemId ? (await app.store.getItem(old.itemId)).vaultId : old.vaultId;
  return app.store.admit({
    operation: old.operation,
    itemId: old.itemId,
    vaultId,
    trigger: 'retry',
    retryOf: old.id,
    requestedBy: opts.requestedBy,
    params: old.params,
    claimBy: claimFor(app, opts),
  });
}
