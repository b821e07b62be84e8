/**
 * `coffer serve`: one process with the HTTP API, a worker pool, lease recovery and metrics.
 * Shutdown is graceful: stop taking work and requests, let running jobs finish within a grace
 * period, then release what is left so it fails fast as WorkerLost instead of hanging until
 * its lease expires.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppContext } from '../app/context.js';
import { pruneAfterScheduledBackup } from '../app/prune.js';
import { startWorkerPool } from '../app/worker.js';
import { CofferError } from '../errors/coffer-error.js';
import { isLoopback } from '../http/auth.js';
import { buildServer, type HttpServer } from '../http/server.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { Scheduler } from '../scheduler/scheduler.js';

export interface ServeOptions {
  host: string;
  port: number;
  workers: number;
  graceMs: number;
  /** Fire scheduled backups from this process (any number of processes may). */
  scheduler: boolean;
  /**
   * After a scheduled backup under a policy with retention rules, queue a prune of its vault at
   * most this often (ms); null or absent: never (run `coffer prune` yourself).
   */
  autoPruneMs?: number | null;
}

export interface RunningServer {
  http: HttpServer;
  address: string;
  shutdown(reason: string): Promise<void>;
}

export async function runServer(app: AppContext, opts: ServeOptions, logger: Logger): Promise<RunningServer> {
  const metrics = new Metrics(app.store);
  app.store.onReaped = (n) => metrics.leaseExpiries.inc(n);
  let draining = false;
  const http = await buildServer({ app, metrics, logger, draining: () => draining });
  if (!isLoopback(opts.host) && !(await http.auth.tokensConfigured())) {
    await http.api.close();
    throw new CofferError(
      'InvalidRequest',
      `refusing to listen on ${opts.host} without API tokens: anyone who reaches it could trigger and cancel backups. Create one first (coffer token create --role admin) or listen on 127.0.0.1`,
      { field: 'host' },
    );
  }
  const address = await http.api.listen({ host: opts.host, port: opts.port });
  const stopClaiming = new AbortController();
  const pool =
    opts.workers > 0
      ? startWorkerPool(app, {
          kind: 'serve',
          concurrency: opts.workers,
          drain: false,
          signal: stopClaiming.signal,
          logger,
          onJobEnd: async (job, outcome) => {
            const ended = await app.store.getJob(job.id).catch(() => null);
            if (ended) metrics.jobEnded(job, outcome, ended);
            const every = opts.autoPruneMs ?? null;
            if (every !== null) {
              const prune = await pruneAfterScheduledBackup(app, job, every).catch((err: unknown) => {
                logger.warn({ err, jobId: job.id }, 'queueing a prune after a scheduled backup failed');
                return null;
              });
              if (prune)
                logger.info(
                  { jobId: prune.id, vaultId: prune.vaultId },
                  'prune queued after scheduled backup',
                );
            }
          },
        })
      : null;
  const scheduler = opts.scheduler
    ? new Scheduler(app.store, app.clock, {
        onTick: (r) => {
          if (r.fired || r.skipped || r.deferred || r.missed || r.promoted || r.cancelled) {
            metrics.scheduled.inc({ outcome: 'fired' }, r.fired);
            metrics.scheduled.inc({ outcome: 'skipped' }, r.skipped);
            metrics.scheduled.inc({ outcome: 'deferred' }, r.deferred);
            metrics.scheduled.inc({ outcome: 'missed' }, r.missed);
            logger.info({ ...r }, 'scheduled runs');
          }
        },
        onError: (err) => logger.warn({ err }, 'scheduler tick failed; retrying'),
      })
    : null;
  scheduler?.start();
  logger.info(
    {
      address,
      workers: opts.workers,
      scheduler: opts.scheduler,
      catalog: app.catalog.description,
      worker: app.workerId,
    },
    'coffer serve started',
  );

  let shuttingDown: Promise<void> | null = null;
  const shutdown = (reason: string): Promise<void> =>
    (shuttingDown ??= (async () => {
      draining = true;
      logger.info(
        { reason, running: pool?.running().length ?? 0, graceMs: opts.graceMs },
        'shutting down: no new requests or jobs',
      );
      stopClaiming.abort();
      await scheduler?.stop();
      http.endStreams();
      const closing = http.api.close();
      if (pool) {
        const finished = await Promise.race([
          pool.done.then(() => true),
          sleep(opts.graceMs, undefined, { ref: false }).then(() => false),
        ]);
        if (!finished) {
          for (const job of pool.running()) {
            logger.warn(
              { jobId: job.id, itemId: job.itemId },
              'grace period over: releasing the job so it fails fast as WorkerLost',
            );
            await app.store
              .release(job.id, {
                force: true,
                reason: `worker ${app.workerId} shut down before the job finished`,
              })
              .catch((err: unknown) =>
                logger.error({ err, jobId: job.id }, 'release at shutdown failed; the lease will expire'),
              );
          }
          // The fenced jobs notice at their next heartbeat and stop without committing.
          await Promise.race([pool.done, sleep(5000, undefined, { ref: false })]);
        }
      }
      await closing;
      logger.info('coffer serve stopped');
    })());
  return { http, address, shutdown };
}
