/**
 * The public JSON shape of a job, shared by `--json` output and (later) the HTTP API, so
 * scripts see the same field names everywhere.
 */
import { describeTrigger, durationMs, progressPercent, type Job } from '../jobs/job.js';
import { parseWorkerId } from './worker-registry.js';

export interface JobJson {
  id: string;
  operation: string;
  state: string;
  item: { id: string; name: string | null } | null;
  vault: { id: string; name: string | null };
  trigger: string;
  retryOf: string | null;
  requestedBy: string | null;
  /** The due time of a scheduled run. */
  scheduledFor: string | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  progress: {
    percent: number | null;
    filesDone: number;
    filesTotal: number | null;
    bytesDone: number;
    bytesTotal: number | null;
    /** Average read rate since the job started. */
    bytesPerSecond: number | null;
    etaSeconds: number | null;
  };
  bytesScanned: number;
  bytesNew: number;
  bytesStored: number;
  worker: string | null;
  /** Host and process id of the worker, from its id: where to look for its logs. */
  workerHost: string | null;
  workerPid: number | null;
  lease: { owner: string; expiresAt: string | null; fencingToken: number } | null;
  cancelRequestedAt: string | null;
  error: { code: string; message: string | null } | null;
  warnings: string[];
  recoveryPointId: string | null;
  params: Record<string, unknown>;
  /** The finished job's report (empty while it runs). */
  result: Record<string, unknown>;
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function jobJson(
  job: Job,
  names: { itemName?: string | null; vaultName?: string | null } = {},
  now = Date.now(),
): JobJson {
  const elapsed = durationMs(job, now);
  return {
    id: job.id,
    operation: job.operation,
    state: job.state,
    item: job.itemId ? { id: job.itemId, name: names.itemName ?? null } : null,
    vault: { id: job.vaultId, name: names.vaultName ?? null },
    trigger: describeTrigger(job),
    retryOf: job.retryOf,
    requestedBy: job.requestedBy,
    scheduledFor: iso(job.scheduledFor),
    createdAt: new Date(job.createdAt).toISOString(),
    startedAt: iso(job.startedAt),
    endedAt: iso(job.endedAt),
    durationMs: elapsed,
    progress: {
      percent: progressPercent(job),
      filesDone: job.filesDone,
      filesTotal: job.filesTotal,
      bytesDone: job.bytesDone,
      bytesTotal: job.bytesTotal,
      bytesPerSecond: elapsed && elapsed > 0 ? Math.round(job.bytesDone / (elapsed / 1000)) : null,
      etaSeconds: job.etaSeconds,
    },
    bytesScanned: job.bytesScanned,
    bytesNew: job.bytesNew,
    bytesStored: job.bytesStored,
    worker: job.workerId,
    workerHost: parseWorkerId(job.workerId)?.host ?? null,
    workerPid: parseWorkerId(job.workerId)?.pid ?? null,
    lease: job.leaseOwner
      ? { owner: job.leaseOwner, expiresAt: iso(job.leaseExpiresAt), fencingToken: job.fencingToken }
      : null,
    cancelRequestedAt: iso(job.cancelRequestedAt),
    error: job.errorCode ? { code: job.errorCode, message: job.errorMessage } : null,
    warnings: job.warnings,
    recoveryPointId: job.recoveryPointId,
    params: job.params,
    result: job.result,
  };
}
