/** explain (self-help articles) and worker (runs queued jobs). */
import type { Command } from 'commander';
import { startWorkerPool } from '../../app/worker.js';
import { createLogger } from '../../observability/logger.js';
import { ERROR_CODES, articleFor, formatArticle, isErrorCode } from '../../errors/index.js';
import { CofferError } from '../../errors/coffer-error.js';
import { parsePositiveInt, printJson } from '../format.js';
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

  program
    .command('worker')
    .description('run queued jobs from the catalog (any number of workers may share one catalog)')
    .option('--concurrency <n>', 'jobs to run at once', '1')
    .option('--drain', 'exit once no job is queued')
    .action(async (opts: { concurrency: string; drain?: boolean }) => {
      const concurrency = parsePositiveInt(opts.concurrency, '--concurrency', 64);
      await withApp(false, async (app) => {
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
      });
    });
}
