/**
 * Starting the engine's threads (encode-worker.ts): how many, with which limits, and ahead of
 * the pool. Kept apart from blob-pool.ts, with nothing heavy imported, so the CLI can start the
 * threads before it loads the rest of its code (cli/main.ts): a thread takes 40 to 60 ms of a
 * core to load, and a backup with little to do otherwise waited for both after its own start-up.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { CofferError } from '../../errors/coffer-error.js';

/**
 * Each thread's young generation, in MiB: a thread's garbage is short-lived message payloads,
 * and V8's default (up to 48 MiB per thread) showed up as tens of MB of peak RSS per backup.
 */
const YOUNG_GENERATION_MB = 4;

/** Threads the pool uses: COFFER_ENGINE_THREADS, else one per core (0 = everything inline). */
export function engineThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.COFFER_ENGINE_THREADS;
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > 256) {
      throw new CofferError('InvalidRequest', 'COFFER_ENGINE_THREADS must be an integer from 0 to 256', {
        field: 'COFFER_ENGINE_THREADS',
        value: raw,
      });
    }
    return n;
  }
  return availableParallelism();
}

/** Set by preferMainThreadLane: the default when COFFER_MAIN_THREAD_WORK is not set. */
let laneByDefault = false;

/**
 * Has the main thread stand in for one of the engine threads unless COFFER_MAIN_THREAD_WORK=off:
 * for a restore in the foreground (cli/start-ahead.ts), before the pool exists. Why restores
 * only: there it held 10–20 MB less and took no longer (the small benchmark tree 7 % less),
 * where a large first backup took about 5 % longer (docs/backup-performance.md, "Memory").
 */
export function preferMainThreadLane(): void {
  laneByDefault = true;
}

/**
 * Whether the main thread stands in for one of the engine threads (local-lane.ts), with at
 * least two: COFFER_MAIN_THREAD_WORK=on or off, else preferMainThreadLane's default (off).
 */
export function mainThreadLane(env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = env.COFFER_MAIN_THREAD_WORK?.trim().toLowerCase();
  let on = laneByDefault;
  if (raw === 'on' || raw === 'off') on = raw === 'on';
  else if (raw !== undefined && raw !== '') {
    throw new CofferError('InvalidRequest', 'COFFER_MAIN_THREAD_WORK must be on or off', {
      field: 'COFFER_MAIN_THREAD_WORK',
      value: env.COFFER_MAIN_THREAD_WORK,
    });
  }
  return on && engineThreads(env) > 1;
}

/** A new engine thread. */
export function startEngineWorker(): Worker {
  return new Worker(new URL('./encode-worker.js', import.meta.url), {
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
  });
}

/** Threads started ahead (startThreadsAhead) that the pool has not taken yet, alive. */
const ahead: Worker[] = [];

/**
 * Starts as many engine threads as the pool will use, before the pool exists; the pool takes
 * them as it needs threads (takeThreadStartedAhead). They never keep the process alive: a
 * command that ends without engine work (a refused backup) exits as if they were not there.
 * Bad settings start nothing (the pool reports them when it is made).
 */
export function startThreadsAhead(env: NodeJS.ProcessEnv = process.env): void {
  let n: number;
  try {
    // With the main thread's lane, one thread fewer.
    n = engineThreads(env) - (mainThreadLane(env) ? 1 : 0);
  } catch {
    return;
  }
  while (ahead.length < n) {
    const worker = startEngineWorker();
    // An unref before the thread is online does not hold, so again once it is.
    worker.unref();
    worker.once('online', () => {
      if (ahead.includes(worker)) worker.unref();
    });
    // One that dies before it is taken is dropped; the pool starts another.
    const drop = () => {
      const i = ahead.indexOf(worker);
      if (i >= 0) ahead.splice(i, 1);
    };
    worker.once('error', drop);
    worker.once('exit', drop);
    ahead.push(worker);
  }
}

/** A thread started ahead and still alive, now the caller's; undefined when none is left. */
export function takeThreadStartedAhead(): Worker | undefined {
  return ahead.shift();
}
