import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { parseDurationMs } from '../../scheduler/schedule.js';
import { parseDbPoolSize, parsePositiveInt } from '../format.js';
import { withApp } from '../session.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the HTTP API, a worker pool and lease recovery in one process')
    .option(
      '--host <host>',
      'address to listen on (other than loopback only once API tokens exist)',
      '127.0.0.1',
    )
    .option('--port <port>', 'port to listen on (0 picks a free one)', '8080')
    .option(
      '--workers <n>',
      'jobs to run at once in this process (0: API only)',
      String(Math.max(1, availableParallelism())),
    )
    .option('--no-scheduler', 'do not fire scheduled backups from this process')
    .option(
      '--prune-every <duration>',
      'after scheduled backups of items whose policy has retention rules, prune their vault at most this often (e.g. 6h; 0: never, run coffer prune yourself)',
      '1h',
    )
    .option(
      '--db-pool-size <n>',
      'PostgreSQL connections this process may open (default: COFFER_DB_POOL_SIZE, else 10)',
    )
    .option(
      '--grace-seconds <n>',
      'on SIGTERM, how long running jobs may take to finish before they are released',
      '30',
    )
    .action(
      async (opts: {
        host: string;
        port: string;
        workers: string;
        graceSeconds: string;
        scheduler: boolean;
        pruneEvery: string;
        dbPoolSize?: string;
      }) => {
        const port = opts.port === '0' ? 0 : parsePositiveInt(opts.port, '--port', 65_535);
        const workers = opts.workers === '0' ? 0 : parsePositiveInt(opts.workers, '--workers', 256);
        const graceMs = parsePositiveInt(opts.graceSeconds, '--grace-seconds', 86_400) * 1000;
        const autoPruneMs =
          opts.pruneEvery === '0' ? null : parseDurationMs(opts.pruneEvery, '--prune-every');
        const dbPoolSize = parseDbPoolSize(opts.dbPoolSize);
        await withApp(
          false,
          async (app) => {
            // pino loads here, not at start: only the long-running commands log.
            const { createLogger } = await import('../../observability/logger.js');
            const logger = createLogger();
            // Loaded here, not at start: the HTTP stack (Fastify, schemas, metrics) costs every
            // other command tens of megabytes and milliseconds it never uses.
            const { runServer } = await import('../../server/run-server.js');
            const server = await runServer(
              app,
              { host: opts.host, port, workers, graceMs, scheduler: opts.scheduler, autoPruneMs },
              logger,
            );
            process.stdout.write(
              `coffer serve listening on ${server.address} (API docs: ${server.address}/docs)\n`,
            );
            await new Promise<void>((resolve) => {
              let signals = 0;
              const onSignal = (signal: string) => {
                if (++signals > 1) process.exit(130);
                void server.shutdown(signal).then(resolve);
              };
              process.on('SIGTERM', () => onSignal('SIGTERM'));
              process.on('SIGINT', () => onSignal('SIGINT'));
            });
          },
          { dbPoolSize },
        );
      },
    );
}
