/** explain (self-help articles) and worker (runs queued jobs; `worker list` shows them). */
import type { Command } from 'commander';
import { startWorkerPool } from '../../app/worker.js';
import { listWorkersJson } from '../../app/worker-view.js';
import { ERROR_CODES, articleFor, formatArticle, isErrorCode } from '../../errors/index.js';
import { CofferError } from '../../errors/coffer-error.js';
import { formatTime, parseDbPoolSize, parsePositiveInt, printJson, table } from '../format.js';
import { withApp } from '../session.js';

export function registerMiscCommands(program: Command, setExit: (code: number) => void): void {
  program
    .command('explain')
    .description('the self-help article for an error code: what happened and what to do')
    .argument('[code]', 'error code, e.g. UserErrorBackupOperationInProgress (omit to list every code)')
    .option('--json', 'print JSON')
    .action((code: string | undefined, opts: { json?: boolean }) => {
      if (code === undefined) {
        if (opts.json) return printJson(ERROR_CODES.map((c) => articleFor(c)));
        for (const c of ERROR_CODES) process.stdout.write(`${c.padEnd(36)}${articleFor(c).title}\n`);
        return;
      }
      const match = ERROR_CODES.find((c) => c.toLowerCase() === code.toLowerCase());
      if (!match || !isErrorCode(match)) {
        throw new CofferError(
          'InvalidRequest',
          `'${code}' is not a coffer error code; run 'coffer explain' to list them`,
          { field: 'code', value: code },
        );
      }
      if (opts.json) printJson(articleFor(match));
      else process.stdout.write(formatArticle(match, { color: process.stdout.isTTY === true }) + '\n');
    });

  const worker = program
    .command('worker')
    .description('run queued jobs from the catalog (any number of workers may share one catalog)')
    .option('--concurrency <n>', 'jobs to run at once', '1')
    .option('--drain', 'exit once no job is queued')
    .option(
      '--db-pool-size <n>',
      'PostgreSQL connections this process may open (default: COFFER_DB_POOL_SIZE, else 10)',
    )
    .action(async (opts: { concurrency: string; drain?: boolean; dbPoolSize?: string }) => {
      const concurrency = parsePositiveInt(opts.concurrency, '--concurrency', 64);
      const dbPoolSize = parseDbPoolSize(opts.dbPoolSize);
      await withApp(
        false,
        async (app) => {
          const stop = new AbortController();
          // First signal: finish running jobs and take no new ones; second: leave now (leases expire).
          let signals = 0;
          const onSignal = () => {
            if (++signals > 1) process.exit(130);
            process.stderr.write('worker: stopping after the running jobs (signal again to leave now)\n');
            stop.abort();
          };
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          // pino loads here, not at start: only the long-running commands log.
          const { createLogger } = await import('../../observability/logger.js');
          const logger = createLogger();
          logger.info({ worker: app.workerId, concurrency }, 'worker started');
          const pool = startWorkerPool(app, {
            concurrency,
            drain: opts.drain === true,
            signal: stop.signal,
            logger,
          });
          const outcomes = await pool.done;
          if (outcomes.some((o) => o.state === 'failed' || o.state === 'lost')) setExit(1);
        },
        { dbPoolSize },
      );
    });

  worker
    .command('list')
    .description('worker processes registered in the catalog and the jobs each holds')
    .option('--all', 'also show lost workers (missed three heartbeats)')
    .option('--json', 'print JSON')
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const workers = await listWorkersJson(app, { includeLost: opts.all === true });
        if (opts.json) return printJson(workers);
        if (!workers.length) {
          process.stdout.write(
            opts.all
              ? 'no workers registered: start coffer serve or coffer worker\n'
              : 'no live workers: start coffer serve or coffer worker (--all shows lost ones)\n',
          );
          return;
        }
        const rows: string[][] = [];
        for (const w of workers) {
          const jobs = w.jobs.length
            ? w.jobs
                .map(
                  (j) =>
                    `${j.id} ${j.operation} ${j.item?.name ?? j.item?.id ?? j.vault.name ?? j.vault.id} ${j.state}${j.progressPercent === null ? '' : ` ${j.progressPercent}%`} lease ${formatTime(j.leaseExpiresAt === null ? null : Date.parse(j.leaseExpiresAt))}`,
                )
                .join('; ')
            : '-';
          rows.push([
            w.id,
            w.state,
            w.kind,
            w.host,
            String(w.pid),
            w.version,
            `${w.jobs.length}/${w.concurrency}`,
            formatTime(Date.parse(w.startedAt)),
            formatTime(Date.parse(w.heartbeatAt)),
            jobs,
          ]);
        }
        process.stdout.write(
          table(
            ['WORKER', 'STATE', 'KIND', 'HOST', 'PID', 'VERSION', 'BUSY', 'STARTED', 'HEARTBEAT', 'JOBS'],
            rows,
          ) + '\n',
        );
      });
    });
}
