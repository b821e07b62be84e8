/** backup, restore, check, prune and point list: the commands that move or verify data. */
import { mkdir, readdir } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { AppContext } from '../../app/context.js';
import { jobJson } from '../../app/job-view.js';
import type { CheckReport } from '../../engine/index.js';
import { CofferError } from '../../errors/coffer-error.js';
import type { Admission } from '../../jobs/ports.js';
import { formatBytes, formatTime, parseRate, printJson, table } from '../format.js';
import { followJob, runInForeground } from '../foreground.js';
import { namesFor, reportJobEnd } from '../job-output.js';
import { withApp } from '../session.js';
import type { PruneJobResult } from '../../app/prune.js';
import { itemRetention } from '../../app/retention.js';
import { triggerBackup, triggerCheck, triggerPrune, triggerRestore } from '../../app/triggers.js';

export function requester(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep 'unknown'
  }
  return `cli:${user}@${hostname()}`;
}

/**
 * After admission: run the job here, or just report it (--detach), or follow the job an
 * idempotent repeat matched. Returns the exit code.
 */
export async function driveAdmission(
  app: AppContext,
  admission: Admission,
  opts: {
    detach?: boolean;
    json?: boolean;
    label: string;
    onCheckReport?: (r: CheckReport) => void;
    onPruneResult?: (r: PruneJobResult) => void;
  },
): Promise<number> {
  const { job, lease } = admission;
  if (opts.detach || (admission.reused && !lease)) {
    if (opts.detach) {
      const names = await namesFor(app, job);
      if (opts.json) printJson({ ...jobJson(job, names), reused: admission.reused });
      else
        process.stdout.write(
          `${admission.reused ? 'already queued' : 'queued'}: job ${job.id} (${job.operation}${names.itemName ? ` of '${names.itemName}'` : ''}, ${job.state}); ` +
            `a worker runs it (coffer worker). Follow it: coffer job show ${job.id}\n`,
        );
      return 0;
    }
    if (!opts.json) process.stderr.write(`idempotency key matched job ${job.id}; following it\n`);
    const ended = await followJob(app, job.id, { label: opts.label, quiet: opts.json === true });
    return reportJobEnd(app, ended.id, opts.json);
  }
  if (!lease) throw new CofferError('InternalError', `job ${job.id} was admitted without a lease`);
  if (!opts.json) process.stderr.write(`job ${job.id} started (Ctrl-C cancels)\n`);
  await runInForeground(app, job, lease, {
    label: opts.label,
    quiet: opts.json === true,
    hooks: { onCheckReport: opts.onCheckReport, onPruneResult: opts.onPruneResult },
  });
  return reportJobEnd(app, job.id, opts.json);
}

export function registerOperationCommands(program: Command, setExit: (code: number) => void): void {
  program
    .command('backup')
    .description('back up a protected item now; the foreground shows progress and Ctrl-C cancels')
    .argument('<item>', 'item name or id')
    .option('--detach', 'only enqueue the job; a `coffer worker` runs it')
    .option(
      '--idempotency-key <key>',
      'repeating a trigger with the same key returns the same job instead of a refusal',
    )
    .option('--limit-read <rate>', 'read the source at most this fast, e.g. 20M (bytes per second)')
    .option('--json', 'print the job as JSON')
    .action(
      async (
        ref: string,
        opts: { detach?: boolean; idempotencyKey?: string; limitRead?: string; json?: boolean },
      ) => {
        await withApp(opts.json, async (app) => {
          const limit = opts.limitRead ? parseRate(opts.limitRead, '--limit-read') : undefined;
          const item = await app.store.getItem(ref);
          // A foreground run needs the password; fail before admitting rather than after.
          if (!opts.detach) app.password();
          const admission = await triggerBackup(app, item.id, {
            requestedBy: requester(),
            claim: !opts.detach,
            idempotencyKey: opts.idempotencyKey ?? null,
            limitReadBytesPerSec: limit,
          });
          setExit(await driveAdmission(app, admission, { ...opts, label: `backup ${item.name}` }));
        });
      },
    );

  program
    .command('restore')
    .description('restore a recovery point of an item into a target directory (latest point by default)')
    .argument('<item>', 'item name or id')
    .requiredOption('--target <dir>', 'directory to restore into (created if missing; should be empty)')
    .option('--point <id>', 'recovery point id (or a unique prefix); default: the latest')
    .option('--path <subpath>', 'restore only this file or directory of the point')
    .option('--detach', 'only enqueue the job; a `coffer worker` runs it')
    .option('--json', 'print the job as JSON')
    .action(
      async (
        ref: string,
        opts: { target: string; point?: string; path?: string; detach?: boolean; json?: boolean },
      ) => {
        await withApp(opts.json, async (app) => {
          const item = await app.store.getItem(ref);
          const target = resolve(opts.target);
          await mkdir(target, { recursive: true });
          if (!opts.detach && (await readdir(target)).length > 0) {
            process.stderr.write(
              `note: ${target} is not empty; restored files replace files of the same name\n`,
            );
          }
          if (!opts.detach) app.password();
          const admission = await triggerRestore(app, item.id, {
            requestedBy: requester(),
            claim: !opts.detach,
            target,
            point: opts.point,
            subpath: opts.path,
          });
          setExit(await driveAdmission(app, admission, { ...opts, label: `restore ${item.name}` }));
        });
      },
    );

  program
    .command('check')
    .description('verify a vault: structure, and with --read-data every blob')
    .argument('<vault>', 'vault name or id')
    .option('--read-data', 'read, decrypt and hash every blob')
    .option('--json', 'print the report as JSON')
    .action(async (ref: string, opts: { readData?: boolean; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const vault = await app.store.getVault(ref);
        app.password();
        let report: CheckReport | null = null;
        const admission = await triggerCheck(app, vault.id, {
          requestedBy: requester(),
          claim: true,
          readData: opts.readData === true,
        });
        const onCheckReport = (r: CheckReport) => (report = r);
        if (opts.json && admission.lease) {
          // One JSON document: the job and the full report together.
          await runInForeground(app, admission.job, admission.lease, {
            label: 'check',
            quiet: true,
            hooks: { onCheckReport },
          });
          const ended = await app.store.getJob(admission.job.id);
          printJson({ job: jobJson(ended, await namesFor(app, ended)), report });
          setExit(ended.state === 'completed' || ended.state === 'completed_with_warnings' ? 0 : 1);
          return;
        }
        const code = await driveAdmission(app, admission, { label: `check ${vault.name}`, onCheckReport });
        if (report !== null) printCheckReport(report);
        setExit(code);
      });
    });

  program
    .command('prune')
    .description(
      "apply each item's retention rules to its points in a vault, then delete the data no point needs",
    )
    .argument('<vault>', 'vault name or id')
    .option('--dry-run', 'delete nothing; show which points would be forgotten and what would be freed')
    .option('--detach', 'only enqueue the job; a `coffer worker` runs it')
    .option('--json', 'print the job and its report as JSON')
    .action(async (ref: string, opts: { dryRun?: boolean; detach?: boolean; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const vault = await app.store.getVault(ref);
        if (!opts.detach) app.password();
        let result: PruneJobResult | null = null;
        const onPruneResult = (r: PruneJobResult) => (result = r);
        const admission = await triggerPrune(app, vault.id, {
          requestedBy: requester(),
          claim: !opts.detach,
          dryRun: opts.dryRun === true,
        });
        if (opts.json && admission.lease) {
          // One JSON document: the job (whose result holds the report) only.
          await runInForeground(app, admission.job, admission.lease, {
            label: 'prune',
            quiet: true,
            hooks: { onPruneResult },
          });
          const ended = await app.store.getJob(admission.job.id);
          printJson(jobJson(ended, await namesFor(app, ended)));
          setExit(ended.state === 'completed' || ended.state === 'completed_with_warnings' ? 0 : 1);
          return;
        }
        const code = await driveAdmission(app, admission, {
          detach: opts.detach,
          json: opts.json,
          label: `prune ${vault.name}`,
          onPruneResult,
        });
        if (result !== null) printPruneResult(result);
        setExit(code);
      });
    });

  const point = program.command('point').description('recovery points');
  point
    .command('list')
    .description("list an item's recovery points, newest first, across every vault it has been in")
    .argument('<item>', 'item name or id')
    .option('--vault <vault>', 'only points in this vault')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { vault?: string; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const item = await app.store.getItem(ref);
        const vaultId = opts.vault ? (await app.store.getVault(opts.vault)).id : undefined;
        const points = await app.store.listPoints(item.id, vaultId);
        const vaults = new Map((await app.store.listVaults()).map((v) => [v.id, v.name]));
        // Per vault, over all the item's points there (--vault narrows to whole vaults only).
        const retention = await itemRetention(app, item, points);
        if (opts.json) {
          return printJson(
            points.map((p) => ({
              ...p,
              vaultName: vaults.get(p.vaultId) ?? null,
              retention: retention.get(p.id) ?? null,
              snapshotTime: new Date(p.snapshotTime).toISOString(),
              createdAt: new Date(p.createdAt).toISOString(),
            })),
          );
        }
        if (!points.length)
          return void process.stdout.write(
            `item '${item.name}' has no recovery points yet: coffer backup ${item.name}\n`,
          );
        process.stdout.write(
          table(
            ['ID', 'TIME', 'VAULT', 'FILES', 'SIZE', 'NEW', 'JOB', 'KEPT BY'],
            points.map((p) => [
              p.id.slice(0, 16),
              formatTime(p.snapshotTime),
              vaults.get(p.vaultId) ?? p.vaultId,
              String(p.files),
              formatBytes(p.bytesScanned),
              formatBytes(p.bytesNew),
              p.jobId,
              retention.get(p.id)?.summary ?? '-',
            ]),
          ) + '\n',
        );
      });
    });
}

function printPruneResult(r: PruneJobResult): void {
  const out: string[] = [];
  if (r.dryRun) out.push('dry run: nothing was deleted');
  const verb = r.dryRun ? 'would forget' : 'forgot';
  out.push(
    `retention: ${verb} ${r.pointsForgotten} point(s), ${r.pointsKept} kept` +
      (r.pointsHeldForRestores ? ` (${r.pointsHeldForRestores} only while a restore reads them)` : ''),
  );
  for (const i of r.items) {
    const why = i.policy === null ? 'no policy' : `policy ${i.policy} (${i.rules ?? 'no retention rules'})`;
    out.push(`  ${i.item}: ${why}: ${i.kept} kept, ${i.forgotten} ${r.dryRun ? 'to forget' : 'forgotten'}`);
  }
  if (r.dryRun) {
    for (const f of r.forgotten) out.push(`  - ${f.pointId.slice(0, 16)}  ${f.item}  ${f.snapshotTime}`);
    if (r.forgotten.length < r.pointsForgotten)
      out.push(
        `  … and ${r.pointsForgotten - r.forgotten.length} more (--json lists the first ${r.forgotten.length})`,
      );
  }
  const gc = r.gc;
  out.push(
    `garbage collection: ${r.dryRun ? 'would delete' : 'deleted'} ${gc.packsDeleted} pack(s), ${formatBytes(gc.bytesFreed)} ${r.dryRun ? 'to free' : 'freed'}` +
      (gc.packsRepacked
        ? `; ${gc.packsRepacked} pack(s) repacked (${formatBytes(gc.bytesRepacked)} copied)`
        : ''),
  );
  if (gc.packsWaiting > 0)
    out.push(
      `waiting: ${gc.packsWaiting} condemned pack(s) wait for backups that were running when they were marked; a later prune deletes them`,
    );
  if (gc.packsKeptPartlyUsed > 0)
    out.push(
      `kept: ${gc.packsKeptPartlyUsed} partly used pack(s) with ${formatBytes(gc.bytesUnreferencedKept)} unreferenced (below the repack threshold)`,
    );
  process.stdout.write(out.join('\n') + '\n');
}

function printCheckReport(report: CheckReport): void {
  for (const issue of report.issues) process.stdout.write(`${issue.severity}: ${issue.message}\n`);
  process.stdout.write(
    report.ok
      ? 'no errors were found\n'
      : `${report.issues.filter((i) => i.severity !== 'info').length} problem(s) found\n`,
  );
}
