/**
 * The worker loop: claims queued jobs from the catalog and runs them under a lease. Any
 * number of worker loops, in any number of processes sharing a catalog, may run at once: a
 * claim is one transaction, so a job is never run twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { runJob, type RunOutcome } from '../jobs/runner.js';
import type { AppContext } from './context.js';
import { executorFor } from './executors.js';

export interface WorkerOptions {
  concurrency: number;
  /** Exit once the queue is empty instead of waiting for more work. */
  drain: boolean;
  pollMs?: number;
  signal: AbortSignal;
  onJobStart?: (jobId: string) => void;
  onJobEnd?: (outcome: RunOutcome) => void;
}

export async function runWorker(app: AppContext, opts: WorkerOptions): Promise<RunOutcome[]> {
  const outcomes: RunOutcome[] = [];
  const execute = executorFor(app);
  const loop = async (slot: number): Promise<void> => {
    const owner = opts.concurrency > 1 ? `${app.workerId}#${slot}` : app.workerId;
    while (!opts.signal.aborted) {
      const claimed = await app.store.claimNext(owner, app.config.leaseMs);
      if (!claimed) {
        if (opts.drain) return;
        await sleep(opts.pollMs ?? 500, undefined, { signal: opts.signal }).catch(() => undefined);
        continue;
      }
      opts.onJobStart?.(claimed.job.id);
      const outcome = await runJob(claimed.job, claimed.lease, execute, {
        store: app.store,
        clock: app.clock,
        leaseMs: app.config.leaseMs,
      });
      outcomes.push(outcome);
      opts.onJobEnd?.(outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, (_, i) => loop(i)));
  return outcomes;
}
