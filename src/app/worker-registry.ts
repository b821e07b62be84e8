/**
 * Worker identity in the catalog: every worker pool (in `coffer serve` or `coffer worker`)
 * registers its process (host, pid, start time, version, concurrency) and heartbeats, so
 * `coffer worker list` and `GET /api/v1/workers` can show who is alive and what each holds. A
 * graceful stop deregisters; a killed or cut-off process stops heartbeating and is shown as
 * `lost` after three missed beats. The registry is informational: leases alone decide who may
 * run or commit a job.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { WorkerBeat } from '../catalog/store.js';
import type { Logger } from '../observability/logger.js';
import { packageRoot } from '../platform/install-paths.js';
import type { AppContext } from './context.js';

/** The worker's heartbeat period: a third of the lease TTL, from 0.5 s to 10 s. */
export function workerHeartbeatMs(leaseMs: number): number {
  return Math.max(500, Math.min(10_000, Math.round(leaseMs / 3)));
}

let version: string | null = null;

/** coffer's version, from its package.json. */
export function cofferVersion(): string {
  if (version !== null) return version;
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
      version?: unknown;
    };
    version = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    version = 'unknown';
  }
  return version;
}

/** Host and pid of a worker id (`host:pid:start`, optionally `#slot`); null if it is not one. */
export function parseWorkerId(id: string | null): { host: string; pid: number } | null {
  if (!id) return null;
  const m = /^(.+):(\d+):[0-9a-z]+(?:#\d+)?$/.exec(id);
  return m ? { host: m[1]!, pid: Number(m[2]) } : null;
}

export interface WorkerRegistration {
  readonly id: string;
  /** Stops heartbeating and removes the worker from the registry. */
  stop(): Promise<void>;
}

export function registerWorker(
  app: AppContext,
  opts: { kind: 'serve' | 'worker'; concurrency: number; logger?: Logger | undefined },
): WorkerRegistration {
  const parsed = parseWorkerId(app.workerId);
  const beatMs = workerHeartbeatMs(app.config.leaseMs);
  const beat: WorkerBeat = {
    id: app.workerId,
    host: parsed?.host ?? hostname(),
    pid: parsed?.pid ?? process.pid,
    kind: opts.kind,
    version: cofferVersion(),
    concurrency: opts.concurrency,
    startedAt: Date.now(),
    heartbeatMs: beatMs,
  };
  let failing = false;
  let inFlight: Promise<void> = Promise.resolve();
  const send = () => {
    inFlight = app.store.workerHeartbeat(beat).then(
      () => {
        if (failing) opts.logger?.info({ worker: beat.id }, 'worker heartbeat recovered');
        failing = false;
      },
      (err: unknown) => {
        // The catalog is unreachable: the registry shows this worker lost until it answers again.
        if (!failing) opts.logger?.warn({ err, worker: beat.id }, 'worker heartbeat failed; retrying');
        failing = true;
      },
    );
  };
  send();
  const timer = setInterval(send, beatMs);
  timer.unref();
  return {
    id: beat.id,
    async stop() {
      clearInterval(timer);
      await inFlight;
      await app.store.deregisterWorker(beat.id).catch((err: unknown) => {
        opts.logger?.warn({ err, worker: beat.id }, 'deregistering the worker failed; it will show as lost');
      });
    },
  };
}
