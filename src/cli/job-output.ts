/** How the CLI reports a job: summaries after a run, the detail view, and exit codes by end state. */
import type { AppContext } from '../app/context.js';
import { jobJson } from '../app/job-view.js';
import { parseWorkerId } from '../app/worker-registry.js';
import { CofferError } from '../errors/coffer-error.js';
import { isErrorCode } from '../errors/codes.js';
import { describeTrigger, durationMs, progressPercent, type Job } from '../jobs/job.js';
import { formatBytes, formatDuration, formatTime, printJson } from './format.js';
import { EXIT_FAILURE, EXIT_OK, reportFailure } from './session.js';

export async function namesFor(
  app: AppContext,
  job: Job,
): Promise<{ itemName: string | null; vaultName: string | null }> {
  const item = job.itemId ? await app.store.getItem(job.itemId).catch(() => null) : null;
  const vault = await app.store.getVault(job.vaultId).catch(() => null);
  return { itemName: item?.name ?? null, vaultName: vault?.name ?? null };
}

/**
 * A prune's counters from its job result: `2 point(s) forgotten, 3 pack(s) deleted, 2.9 MiB freed`.
 * The result is stored JSON, so every field is checked rather than trusted.
 */
export function pruneSummary(job: Job): string | null {
  if (job.operation !== 'prune') return null;
  const r = job.result;
  const gc = typeof r.gc === 'object' && r.gc !== null ? (r.gc as Record<string, unknown>) : {};
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  if (typeof r.pointsForgotten !== 'number') return null;
  const dry = r.dryRun === true;
  return (
    `${dry ? 'dry run: would forget' : 'forgot'} ${num(r.pointsForgotten)} point(s), ` +
    `${dry ? 'would delete' : 'deleted'} ${num(gc.packsDeleted)} pack(s), ` +
    `${formatBytes(num(gc.bytesFreed))} ${dry ? 'to free' : 'freed'}`
  );
}

/** Prints how a job ended and returns the process exit code for it. */
export async function reportJobEnd(
  app: AppContext,
  jobId: string,
  json: boolean | undefined,
): Promise<number> {
  const job = await app.store.getJob(jobId);
  const names = await namesFor(app, job);
  if (job.state === 'completed' || job.state === 'completed_with_warnings') {
    if (json) printJson(jobJson(job, names));
    else {
      const what =
        job.operation === 'backup'
          ? `of '${names.itemName}' into vault '${names.vaultName}'`
          : `(${names.vaultName})`;
      const counters =
        pruneSummary(job) ??
        `${job.filesDone} files, ${formatBytes(job.bytesScanned)} scanned, ${formatBytes(job.bytesNew)} new, ` +
          `${formatBytes(job.bytesStored)} stored`;
      process.stdout.write(
        `${job.operation} ${what} ${job.state.replace(/_/g, ' ')} in ${formatDuration(durationMs(job, Date.now()))}: ` +
          counters +
          (job.recoveryPointId ? `; recovery point ${job.recoveryPointId.slice(0, 16)}` : '') +
          ` (job ${job.id})\n`,
      );
      for (const w of job.warnings) process.stdout.write(`warning: ${w}\n`);
    }
    return EXIT_OK;
  }
  const code = job.errorCode && isErrorCode(job.errorCode) ? job.errorCode : 'InternalError';
  const failure = new CofferError(
    code,
    `job ${job.id} (${job.operation}) ended ${job.state}: ${job.errorMessage ?? 'no detail'}`,
    {
      jobId: job.id,
      item: names.itemName,
      vault: names.vaultName,
    },
  );
  if (json) {
    printJson(jobJson(job, names));
    return EXIT_FAILURE;
  }
  reportFailure(failure);
  return EXIT_FAILURE;
}

export function printJobDetail(
  job: Job,
  names: { itemName: string | null; vaultName: string | null },
  events: { at: number; state: string; message: string | null }[],
): void {
  const pct = progressPercent(job);
  const lines: [string, string][] = [
    ['job', job.id],
    ['operation', job.operation],
    ['state', job.state],
    ['item', job.itemId ? `${names.itemName ?? '?'} (${job.itemId})` : '-'],
    ['vault', `${names.vaultName ?? '?'} (${job.vaultId})`],
    ['trigger', describeTrigger(job)],
    ['requested by', job.requestedBy ?? '-'],
    ['created', formatTime(job.createdAt)],
    ['started', formatTime(job.startedAt)],
    ['ended', formatTime(job.endedAt)],
    ['duration', formatDuration(durationMs(job, Date.now()))],
    [
      'progress',
      `${pct === null ? '-' : `${pct}%`} (${formatBytes(job.bytesDone)} of ${formatBytes(job.bytesTotal)}, ${job.filesDone}${job.filesTotal === null ? '' : `/${job.filesTotal}`} files, ETA ${job.etaSeconds === null ? '-' : formatDuration(job.etaSeconds * 1000)})`,
    ],
    [
      'bytes',
      `scanned ${formatBytes(job.bytesScanned)}, new ${formatBytes(job.bytesNew)}, stored ${formatBytes(job.bytesStored)}`,
    ],
    ['worker', workerLine(job.workerId)],
    [
      'lease',
      job.leaseOwner
        ? `${job.leaseOwner} until ${formatTime(job.leaseExpiresAt)} (token ${job.fencingToken})`
        : '-',
    ],
    ['recovery point', job.recoveryPointId ?? '-'],
    ...(pruneSummary(job) ? ([['result', pruneSummary(job)!]] as [string, string][]) : []),
    ['error', job.errorCode ? `${job.errorCode}: ${job.errorMessage ?? ''}` : '-'],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
  for (const warning of job.warnings) process.stdout.write(`${'warning'.padEnd(w)}  ${warning}\n`);
  if (events.length) {
    process.stdout.write('\ntimeline:\n');
    for (const e of events)
      process.stdout.write(`  ${formatTime(e.at)}  ${e.state.padEnd(24)}${e.message ?? ''}\n`);
  }
  if (job.errorCode) process.stdout.write(`\nself-help: coffer explain ${job.errorCode}\n`);
}

/** The worker id, with where it ran spelled out: host and pid are what an operator greps logs by. */
function workerLine(id: string | null): string {
  if (!id) return '-';
  const w = parseWorkerId(id);
  return w ? `${id} (host ${w.host}, pid ${w.pid})` : id;
}
