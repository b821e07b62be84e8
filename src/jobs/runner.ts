/**
 * Runs one claimed job to its end: heartbeats under the lease, turns a cancel or a lost lease
 * into an abort, and ends the job through the store's fenced `finish`. The work itself (backup,
 * restore, check) is an Executor supplied by the composition root, so this file knows nothing
 * of the data engine.
 */
import { CofferError, isCofferError } from '../errors/coffer-error.js';
import type { Clock } from './clock.js';
import type { Job, JobProgress } from './job.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { FinishState, JobStore, Lease, RecoveryPointDraft } from './ports.js';

export interface ExecutionContext {
  signal: AbortSignal;
  reportProgress(p: Partial<JobProgress>): void;
}

export interface ExecutionResult {
  warnings?: string[];
  result?: Record<string, unknown>;
  recoveryPoint?: RecoveryPointDraft;
  /** Called once the catalog committed the job (e.g. make the snapshot visible in storage). */
  afterCommit?: () => Promise<void>;
  /** Called when the commit was refused or turned into a cancel (e.g. discard the snapshot). */
  onRejected?: () => Promise<void>;
}

export type Executor = (job: Job, ctx: ExecutionContext) => Promise<ExecutionResult>;

export interface RunOutcome {
  jobId: string;
  /** How the job ended, or `lost` when this worker lost the lease and could not end it. */
  state: FinishState | 'lost';
  errorCode: string | null;
  errorMessage: string | null;
  recoveryPointId: string | null;
}

export interface RunOptions {
  store: JobStore;
  clock: Clock;
  leaseMs: number;
  heartbeatMs?: number;
  onProgress?: (p: JobProgress) => void;
  /**
   * Handed a way to heartbeat now, for as long as the job runs: a worker that hears of a cancel
   * (PostgreSQL notices) checks at once instead of at the next periodic heartbeat.
   */
  onStarted?: (checkNow: () => Promise<void>) => void;
}

export function emptyProgress(): JobProgress {
  return {
    filesDone: 0,
    filesTotal: null,
    bytesDone: 0,
    bytesTotal: null,
    bytesScanned: 0,
    bytesNew: 0,
    bytesStored: 0,
    etaSeconds: null,
  };
}

export async function runJob(
  job: Job,
  lease: Lease,
  execute: Executor,
  opts: RunOptions,
): Promise<RunOutcome> {
  const progress: JobProgress = { ...emptyProgress() };
  const keeper = new LeaseKeeper({
    store: opts.store,
    lease,
    leaseMs: opts.leaseMs,
    clock: opts.clock,
    intervalMs: opts.heartbeatMs,
    progress: () => progress,
  });
  keeper.start();
  opts.onStarted?.(() => keeper.beat());
  const ctx: ExecutionContext = {
    signal: keeper.signal,
    reportProgress(p) {
      Object.assign(progress, p);
      opts.onProgress?.(progress);
    },
  };
  const outcome = (
    state: RunOutcome['state'],
    code: string | null,
    message: string | null,
    point: string | null,
  ): RunOutcome => ({
    jobId: job.id,
    state,
    errorCode: code,
    errorMessage: message,
    recoveryPointId: point,
  });

  try {
    let result: ExecutionResult;
    try {
      result = await execute(job, ctx);
    } catch (err) {
      if (keeper.stopReason === 'lease-lost') {
        return outcome('lost', 'LeaseLost', 'this worker lost its lease; nothing was committed', null);
      }
      const cancelled = keeper.stopReason === 'cancelled' || isCofferError(err, 'JobCancelled');
      const code = cancelled ? 'JobCancelled' : isCofferError(err) ? err.code : 'InternalError';
      const message = cancelled ? 'cancelled by request; nothing was committed' : (err as Error).message;
      return await finishOrLost(cancelled ? 'cancelled' : 'failed', code, message, {});
    }
    // The work may have finished in the same instant a cancel or a lease loss arrived.
    if (keeper.stopReason === 'lease-lost') {
      await result.onRejected?.();
      return outcome('lost', 'LeaseLost', 'this worker lost its lease; nothing was committed', null);
    }
    const warnings = result.warnings ?? [];
    return await finishOrLost(warnings.length ? 'completed_with_warnings' : 'completed', null, null, result);
  } finally {
    keeper.stop();
  }

  async function finishOrLost(
    state: FinishState,
    code: string | null,
    message: string | null,
    result: ExecutionResult,
  ): Promise<RunOutcome> {
    try {
      const done = await opts.store.finish(lease, {
        state,
        progress,
        errorCode: code,
        errorMessage: message,
        warnings: result.warnings ?? [],
        result: result.result ?? {},
        recoveryPoint: result.recoveryPoint,
      });
      if (done.recoveryPointCommitted) await result.afterCommit?.();
      else await result.onRejected?.();
      const ended = done.state;
      return outcome(
        ended,
        ended === state ? code : 'JobCancelled',
        ended === state ? message : 'cancelled by request; nothing was committed',
        done.recoveryPointCommitted ? (result.recoveryPoint?.id ?? null) : null,
      );
    } catch (err) {
      if (isCofferError(err, 'LeaseLost')) {
        await result.onRejected?.();
        return outcome('lost', 'LeaseLost', err.message, null);
      }
      await result.onRejected?.();
      throw err instanceof CofferError ? err : new CofferError('CatalogUnavailable', (err as Error).message);
    }
  }
}
