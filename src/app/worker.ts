/**
 * The worker pool: claims queued jobs from the catalog and runs them under a lease. Any
 * number of pools, in any number of processes sharing a catalog, may run at once: a claim is
 * one transaction, so a job is never run twice.
 *
 * Idle slots poll the catalog. On PostgreSQL they also listen for notices (catalog/notify.ts):
 * a newly queued job wakes them at once, and a cancel notice makes the slot running that job
 * heartbeat immediately, so the cancel is seen without waiting for the periodic heartbeat.
 * While the listener is connected the poll is only a fallback (config.workerPollMs).
 */
import type { CatalogNotice } from '../catalog/notify.js';
import type { Job } from '../jobs/job.js';
import { runJob, type RunOutcome } from '../jobs/runner.js';
import type { Logger } from '../observability/logger.js';
import type { AppContext } from './context.js';
import { executorFor } from './executors.js';
import { registerWorker } from './worker-registry.js';

/** Idle poll when no notices arrive (SQLite, or the PostgreSQL listener is down). */
export const POLL_WITHOUT_NOTICES_MS = 250;

export interface WorkerOptions {
  concurrency: number;
  /** Exit once the queue is empty instead of waiting for more work. */
  drain: boolean;
  /** Idle poll; by default 250 ms, or config.workerPollMs while PostgreSQL notices are heard. */
  pollMs?: number;
  /** How the worker shows in the registry (`coffer worker list`); default `worker`. */
  kind?: 'serve' | 'worker';
  /** Stops claiming; running jobs go on to their end. */
  signal: AbortSignal;
  logger?: Logger;
  onJobEnd?: (job: Job, outcome: RunOutcome) => void | Promise<void>;
}

export interface WorkerPool {
  /** Resolves when every slot has stopped (after the signal, or when drained). */
  done: Promise<RunOutcome[]>;
  /** Jobs this pool is running now. */
  running(): Job[];
}

export function startWorkerPool(app: AppContext, opts: WorkerOptions): WorkerPool {
  const outcomes: RunOutcome[] = [];
  const running = new Map<string, Job>();
  const execute = executorFor(app);
  const concurrency = Math.max(1, opts.concurrency);
  const registration = registerWorker(app, {
    kind: opts.kind ?? 'worker',
    concurrency,
    logger: opts.logger,
  });
  // Idle slots wait on `wake`; a notice (or the stop signal) resolves it for all of them.
  let wakeUp: () => void = () => undefined;
  let wake = new Promise<void>((r) => (wakeUp = r));
  const wakeAll = () => {
    const fire = wakeUp;
    wake = new Promise<void>((r) => (wakeUp = r));
    fire();
  };
  const checkNow = new Map<string, () => Promise<void>>();
  const notices = app.catalog.notices;
  const unsubscribe = notices?.subscribe((n: CatalogNotice) => {
    if (n.kind === 'cancel') void checkNow.get(n.jobId)?.();
    else wakeAll();
  });
  opts.signal.addEventListener('abort', wakeAll, { once: true });
  const idle = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([wake, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  };
  const pollMs = () =>
    opts.pollMs ?? (notices?.connected ? app.config.workerPollMs : POLL_WITHOUT_NOTICES_MS);
  const loop = async (slot: number): Promise<void> => {
    const owner = concurrency > 1 ? `${app.workerId}#${slot}` : app.workerId;
    while (!opts.signal.aborted) {
      let claimed;
      try {
        claimed = await app.store.claimNext(owner, app.config.leaseMs);
      } catch (err) {
        // The catalog is unreachable (e.g. PostgreSQL restarting): wait and try again.
        opts.logger?.warn({ err, worker: owner }, 'claiming a job failed; retrying');
        await idle(1000);
        continue;
      }
      if (!claimed) {
        if (opts.drain) return;
        await idle(pollMs());
        continue;
      }
      const { job, lease } = claimed;
      const log = opts.logger?.child({
        jobId: job.id,
        itemId: job.itemId,
        vaultId: job.vaultId,
        operation: job.operation,
        worker: owner,
      });
      running.set(job.id, job);
      log?.info({ trigger: job.trigger, requestedBy: job.requestedBy }, 'job started');
      try {
        const outcome = await runJob(job, lease, execute, {
          store: app.store,
          clock: app.clock,
          leaseMs: app.config.leaseMs,
          onStarted: (check) => checkNow.set(job.id, check),
        });
        outcomes.push(outcome);
        log?.info(
          {
            state: outcome.state,
            errorCode: outcome.errorCode,
            error: outcome.errorMessage,
            recoveryPointId: outcome.recoveryPointId,
          },
          'job ended',
        );
        await opts.onJobEnd?.(job, outcome);
      } catch (err) {
        log?.error({ err }, 'job could not be ended; its lease will expire');
      } finally {
        running.delete(job.id);
        checkNow.delete(job.id);
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i))).then(async () => {
    unsubscribe?.();
    await registration.stop();
    return outcomes;
  });
  return { done, running: () => [...running.values()] };
}
