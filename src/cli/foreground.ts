/**
 * Runs a job in the CLI's own process (`coffer backup`, `restore`, `check`, `job retry`), or
 * follows one that another process runs. Ctrl-C asks the catalog to cancel, so the cancel is
 * the same truthful, acknowledged cancel as from any other client; a second Ctrl-C leaves at
 * once and the lease expiry cleans up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppContext } from '../app/context.js';
import { executorFor, type ExecutorHooks } from '../app/executors.js';
import { isTerminal, type Job } from '../jobs/job.js';
import type { Lease } from '../jobs/ports.js';
import { runJob, type RunOutcome } from '../jobs/runner.js';
import { createProgressView } from './progress.js';

export interface ForegroundOptions {
  label: string;
  quiet?: boolean;
  hooks?: ExecutorHooks;
}

export async function runInForeground(
  app: AppContext,
  job: Job,
  lease: Lease,
  opts: ForegroundOptions,
): Promise<RunOutcome> {
  const view = opts.quiet ? null : createProgressView(opts.label);
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts === 1) {
      view?.note(`cancelling job ${job.id} (press Ctrl-C again to leave without waiting)`);
      app.store.requestCancel(job.id).catch(() => undefined);
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  try {
    return await runJob(job, lease, executorFor(app, opts.hooks), {
      store: app.store,
      clock: app.clock,
      leaseMs: app.config.leaseMs,
      onProgress: (p) => view?.update(p),
    });
  } finally {
    view?.stop();
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
  }
}

/** Waits for a job run by another process to end, showing its progress from the catalog. */
export async function followJob(
  app: AppContext,
  jobId: string,
  opts: { label: string; quiet?: boolean; pollMs?: number },
): Promise<Job> {
  const view = opts.quiet ? null : createProgressView(opts.label);
  try {
    for (;;) {
      const job = await app.store.getJob(jobId);
      if (isTerminal(job.state)) return job;
      view?.update(job);
      await sleep(opts.pollMs ?? 250);
    }
  } finally {
    view?.stop();
  }
}
