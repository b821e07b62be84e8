/**
 * The work behind each operation, as Executors for the job runner: they connect a job to the
 * data engine (prune lives in prune.ts). Backup prepares a snapshot that becomes visible in storage only after the
 * catalog committed it under a live lease (fencing), and is discarded otherwise.
 */
import type { Job } from '../jobs/job.js';
import type { ExecutionContext, ExecutionResult, Executor } from '../jobs/runner.js';
import { type BackupProgress, type CheckReport, warmEngineThreads } from '../engine/index.js';
import { CofferError } from '../errors/coffer-error.js';
import type { AppContext } from './context.js';
import { runPruneJob, type PruneHooks } from './prune.js';
import { rememberKeyHint } from './key-prefetch.js';
import { openVaultRepository } from './vaults.js';

export interface ExecutorHooks extends PruneHooks {
  /** Receives a check's full report, which the job row keeps only in summary. */
  onCheckReport?: (report: CheckReport) => void;
}

export function executorFor(app: AppContext, hooks: ExecutorHooks = {}): Executor {
  return async (job, ctx) => {
    // The engine's first thread loads while the catalog is read and the vault's key derived.
    warmEngineThreads();
    switch (job.operation) {
      case 'backup':
        return runBackup(app, job, ctx);
      case 'restore':
        return runRestore(app, job, ctx);
      case 'check':
        return runCheck(app, job, ctx, hooks);
      case 'prune':
        return runPruneJob(app, job, ctx, hooks);
      default:
        throw new CofferError('InvalidRequest', `operation ${job.operation} is not available yet`, {
          operation: job.operation,
        });
    }
  };
}

/** The counters both backup and restore progress carry. */
type EngineProgress = Pick<BackupProgress, 'filesDone' | 'filesTotal' | 'bytesDone' | 'bytesTotal'> & {
  bytesNew?: number;
  bytesStored?: number;
};

/** Progress with an ETA from the rate so far; the engine reports counters only. */
function progressReporter(ctx: ExecutionContext, startedAt: number) {
  return (p: EngineProgress) => {
    const elapsed = (Date.now() - startedAt) / 1000;
    const rate = elapsed > 0 ? p.bytesDone / elapsed : 0;
    const total = p.bytesTotal ?? null;
    ctx.reportProgress({
      filesDone: p.filesDone,
      filesTotal: p.filesTotal ?? null,
      bytesDone: p.bytesDone,
      bytesTotal: total,
      bytesScanned: p.bytesDone,
      bytesNew: p.bytesNew ?? 0,
      bytesStored: p.bytesStored ?? 0,
      etaSeconds:
        total !== null && rate > 0 && elapsed > 1
          ? Math.max(0, Math.round((total - p.bytesDone) / rate))
          : null,
    });
  };
}

async function runBackup(app: AppContext, job: Job, ctx: ExecutionContext): Promise<ExecutionResult> {
  if (!job.itemId) throw new CofferError('InvalidRequest', 'a backup job needs an item', { field: 'item' });
  const item = await app.store.getItem(job.itemId);
  // The job's vault is the one the item belonged to when the job was admitted; a later move
  // does not redirect a running job.
  const vault = await app.store.getVault(job.vaultId);
  const repo = await openVaultRepository(app, vault);
  // The next `coffer backup` of this item derives this key while it loads (key-prefetch.ts).
  rememberKeyHint(app.config.home, [item.name, item.id], repo.kdf);
  const parent = await app.store.latestPoint(item.id, vault.id);
  const limit =
    typeof job.params.limitReadBytesPerSec === 'number' ? job.params.limitReadBytesPerSec : undefined;
  const snapshotTime = Date.now();
  const res = await repo.backup({
    sourcePath: item.sourcePath,
    parentSnapshotId: parent?.id,
    tags: { item: item.id, itemName: item.name, job: job.id, vault: vault.id },
    signal: ctx.signal,
    onProgress: progressReporter(ctx, snapshotTime),
    limitReadBytesPerSec: limit,
  });
  const s = res.stats;
  const files = s.filesNew + s.filesChanged + s.filesUnmodified;
  ctx.reportProgress({
    bytesScanned: s.bytesScanned,
    bytesNew: s.bytesNew,
    bytesStored: s.bytesStored,
    filesDone: files,
  });
  return {
    warnings: s.warnings,
    result: { snapshotId: res.snapshotId, parentSnapshotId: res.parentSnapshotId, ...s, warnings: undefined },
    recoveryPoint: {
      id: res.snapshotId,
      itemId: item.id,
      vaultId: vault.id,
      parentId: res.parentSnapshotId ?? null,
      sourcePath: item.sourcePath,
      files,
      bytesScanned: s.bytesScanned,
      bytesNew: s.bytesNew,
      bytesStored: s.bytesStored,
      snapshotTime,
    },
    afterCommit: () => repo.commitSnapshot(res.snapshotId),
    onRejected: () => repo.discardSnapshot(res.snapshotId),
  };
}

async function runRestore(app: AppContext, job: Job, ctx: ExecutionContext): Promise<ExecutionResult> {
  const pointId = String(job.params.pointId ?? '');
  const target = String(job.params.target ?? '');
  const point = await app.store.getPoint(pointId);
  const vault = await app.store.getVault(point.vaultId);
  const repo = await openVaultRepository(app, vault);
  const started = Date.now();
  const report = progressReporter(ctx, started);
  const res = await repo.restore({
    snapshotId: point.id,
    target,
    subpath: typeof job.params.subpath === 'string' ? job.params.subpath : undefined,
    signal: ctx.signal,
    onProgress: (p) => report(p),
  });
  return { warnings: res.warnings, result: { pointId, ...res, warnings: undefined } };
}

async function runCheck(
  app: AppContext,
  job: Job,
  ctx: ExecutionContext,
  hooks: ExecutorHooks,
): Promise<ExecutionResult> {
  const vault = await app.store.getVault(job.vaultId);
  const repo = await openVaultRepository(app, vault);
  const report = await repo.check({ readData: job.params.readData === true, signal: ctx.signal });
  hooks.onCheckReport?.(report);
  if (!report.ok) {
    const errors = report.issues.filter((i) => i.severity !== 'info');
    throw new CofferError(
      'RepositoryCorrupt',
      `check found ${errors.length} problem(s) in vault '${vault.name}': ${errors
        .slice(0, 3)
        .map((i) => i.message)
        .join('; ')}`,
      { vault: vault.name, issues: errors.slice(0, 20) },
    );
  }
  return { result: { ...report, issues: report.issues.length } };
}
