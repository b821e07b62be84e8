/**
 * The worker pool: claims queued jobs from the catalog and runs them under a lease. Any
 * number of pools, in any number of processes sharing a catalog, may run at once: a claim is
 * one transaction, so a job is never run twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from '../jobs/job.js';
import { runJob, type RunOutcome } from '../jobs/runner.js';
import type { Logger } from '../observability/logger.js';
import type { AppContext } from './context.js';
import { executorFor } from './executors.js';

export interface WorkerOptions {
  concurrency: number;
  /** Exit once the queue is empty instead of waiting for more work. */
  drain: boolean;
  pollMs?: number;
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
  const loop = async (slot: number): Promise<void> => {
    const owner = opts.concurrency > 1 ? `${app.workerId}#${slot}` : app.workerId;
    while (!opts.signal.aborted) {
      let claimed;
      try {
        claimed = await app.store.claimNext(owner, app.config.leaseMs);
      } catch (err) {
        // The catalog is unreachable (e.g. PostgreSQL restarting): wait and try again.
        opts.logger?.warn({ err, worker: owner }, 'claiming a job failed; retrying');
        await sleep(1000, undefined, { signal: opts.signal }).catch(() => undefined);
        continue;
      }
      if (!claimed) {
        if (opts.drain) return;
        await sleep(opts.pollMs ?? 250, undefined, { signal: opts.signal }).catch(() => undefined);
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
      }
    }
  };
  const done = Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, (_, i) => loop(i))).then(
    () => outcomes,
  );
  return { done, running: () => [...running.values()] };
}
