/** The jobs view on the command line: list, show, cancel, retry, release. */
import type { Command } from 'commander';
import type { AppContext } from '../../app/context.js';
import { jobJson } from '../../app/job-view.js';
import { CofferError } from '../../errors/coffer-error.js';
import {
  describeTrigger,
  durationMs,
  isJobState,
  isOperation,
  isTerminal,
  progressPercent,
  type Job,
  type JobState,
  type Operation,
} from '../../jobs/job.js';
import { formatDuration, formatTime, parsePositiveInt, parseTimeArg, printJson, table } from '../format.js';
import { followJob } from '../foreground.js';
import { namesFor, printJobDetail, reportJobEnd } from '../job-output.js';
import { withApp } from '../session.js';
import { retryJob } from '../../app/triggers.js';
import { driveAdmission, requester } from './operations.js';

function parseList<T extends string>(
  value: string | undefined,
  valid: (v: string) => v is T,
  field: string,
  allowed: readonly string[],
): T[] | undefined {
  if (!value) return undefined;
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const p of parts) {
    if (!valid(p))
      throw new CofferError('InvalidRequest', `${field} '${p}' is not one of: ${allowed.join(', ')}`, {
        field,
        value: p,
      });
  }
  return parts as T[];
}

export function registerJobCommands(program: Command, setExit: (code: number) => void): void {
  const job = program
    .command('job')
    .description('the jobs view: every backup, restore and check, with history');

  job
    .command('list')
    .description('list jobs, newest first')
    .option('--vault <vault>', 'only jobs in this vault')
    .option('--item <item>', 'only jobs of this item')
    .option('--state <states>', 'comma-separated states, e.g. in_progress,queued')
    .option('--operation <ops>', 'comma-separated operations, e.g. backup')
    .option('--since <time>', 'created at or after: ISO time or a duration back from now (30m, 24h, 7d)')
    .option('--until <time>', 'created before: ISO time or a duration back from now')
    .option('--limit <n>', 'at most this many jobs', '50')
    .option('--before <id>', 'page: jobs older than this job id')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        vault?: string;
        item?: string;
        state?: string;
        operation?: string;
        since?: string;
        until?: string;
        limit: string;
        before?: string;
        json?: boolean;
      }) => {
        await withApp(opts.json, async (app) => {
          const { JOB_STATES, OPERATIONS } = await import('../../jobs/job.js');
          const states = parseList<JobState>(opts.state, isJobState, '--state', JOB_STATES);
          const operations = parseList<Operation>(opts.operation, isOperation, '--operation', OPERATIONS);
          const vaultId = opts.vault ? (await app.store.getVault(opts.vault)).id : undefined;
          const itemId = opts.item ? (await app.store.getItem(opts.item)).id : undefined;
          const jobs = await app.store.listJobs({
            vaultId,
            itemId,
            states,
            operations,
            since: opts.since ? parseTimeArg(opts.since, '--since') : undefined,
            until: opts.until ? parseTimeArg(opts.until, '--until') : undefined,
            limit: parsePositiveInt(opts.limit, '--limit', 10_000),
            before: opts.before,
          });
          const names = await nameMaps(app);
          if (opts.json) {
            return printJson(
              jobs.map((j) =>
                jobJson(j, {
                  itemName: j.itemId ? names.items.get(j.itemId) : null,
                  vaultName: names.vaults.get(j.vaultId),
                }),
              ),
            );
          }
          if (!jobs.length) return void process.stdout.write('no jobs match\n');
          process.stdout.write(
            table(
              [
                'ID',
                'OPERATION',
                'ITEM',
                'VAULT',
                'STATE',
                'STARTED',
                'DURATION',
                'PROGRESS',
                'TRIGGER',
                'ERROR',
              ],
              jobs.map((j) => jobRow(j, names)),
            ) + '\n',
          );
        });
      },
    );

  job
    .command('show')
    .description("a job's details, counters, worker and timeline")
    .argument('<id>', 'job id')
    .option('--follow', 'wait until the job ends, showing its progress')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { follow?: boolean; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        if (opts.follow) await followJob(app, id, { label: `job ${id}`, quiet: opts.json === true });
        const j = await app.store.getJob(id);
        const names = await namesFor(app, j);
        const events = await app.store.listEvents(id);
        if (opts.json)
          return printJson({
            ...jobJson(j, names),
            events: events.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
          });
        printJobDetail(j, names, events);
        if (opts.follow) setExit(j.state === 'completed' || j.state === 'completed_with_warnings' ? 0 : 1);
      });
    });

  job
    .command('cancel')
    .description(
      'cancel a job: a queued job never starts; a running one stops within about a second and commits nothing',
    )
    .argument('<id>', 'job id')
    .option('--wait', 'wait until the worker acknowledged the cancel')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { wait?: boolean; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        let j = await app.store.requestCancel(id);
        if (opts.wait && !isTerminal(j.state))
          j = await followJob(app, id, { label: `cancelling ${id}`, quiet: true, pollMs: 100 });
        const names = await namesFor(app, j);
        if (opts.json) return printJson(jobJson(j, names));
        process.stdout.write(
          j.state === 'cancelling'
            ? `job ${id} is cancelling: its worker stops at the next chunk (coffer job cancel ${id} --wait waits for it)\n`
            : `job ${id} is ${j.state}\n`,
        );
        if (opts.wait && j.state !== 'cancelled') setExit(1);
      });
    });

  job
    .command('retry')
    .description('start a new job for the same item and operation (foreground unless --detach)')
    .argument('<id>', 'the failed, cancelled or skipped job')
    .option('--detach', 'only enqueue the new job')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { detach?: boolean; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        if (!opts.detach) app.password();
        const admission = await retryJob(app, id, { requestedBy: requester(), claim: !opts.detach });
        setExit(await driveAdmission(app, admission, { ...opts, label: `retry ${admission.job.operation}` }));
      });
    });

  job
    .command('release')
    .description("free an item whose job's worker died (lease expired); --force also fences a live worker")
    .argument('<id>', 'job id')
    .option(
      '--force',
      'release even though a worker still holds a live lease; that worker can no longer commit',
    )
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { force?: boolean; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const j = await app.store.release(id, { force: opts.force === true });
        if (opts.json) return printJson(jobJson(j, await namesFor(app, j)));
        process.stdout.write(`job ${id} released: now ${j.state} (${j.errorCode}); the item is free\n`);
      });
    });

  job
    .command('wait')
    .description('wait until a job ends; exit 0 if it completed')
    .argument('<id>', 'job id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        await followJob(app, id, { label: `job ${id}`, quiet: opts.json === true });
        setExit(await reportJobEnd(app, id, opts.json));
      });
    });
}

async function nameMaps(
  app: AppContext,
): Promise<{ items: Map<string, string>; vaults: Map<string, string> }> {
  const [items, vaults] = await Promise.all([app.store.listItems(), app.store.listVaults()]);
  return {
    items: new Map(items.map((i) => [i.id, i.name])),
    vaults: new Map(vaults.map((v) => [v.id, v.name])),
  };
}

function jobRow(j: Job, names: { items: Map<string, string>; vaults: Map<string, string> }): string[] {
  const pct = progressPercent(j);
  return [
    j.id,
    j.operation,
    j.itemId ? (names.items.get(j.itemId) ?? j.itemId) : '-',
    names.vaults.get(j.vaultId) ?? j.vaultId,
    j.state,
    formatTime(j.startedAt),
    formatDuration(durationMs(j, Date.now())),
    pct === null ? '-' : `${pct}%`,
    describeTrigger(j),
    j.errorCode ?? '',
  ];
}
