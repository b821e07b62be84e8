/**
 * The prune job: retention, then garbage collection, for one vault.
 *
 *   1. Retention: each item's policy decides which of its points in the vault stay
 *      (app/retention.ts). Items without a policy, or with a policy without rules, keep everything.
 *   2. Forget: for each point no rule keeps, the snapshot is removed from storage, then the catalog
 *      row. Storage first, so an interrupted prune leaves rows the next prune forgets again (the
 *      rules still say so: newer points never make an older one kept again), never a snapshot file
 *      no prune would ever look at.
 *   3. Garbage collection: the engine's two-phase prune (engine/prune/pruner.ts). Condemned packs
 *      are deleted only once every backup, restore and check of this vault that was running at
 *      the mark has ended, which the catalog answers (dataJobRunningSince).
 *
 * A dry run deletes nothing: it reports the points retention would forget and what the garbage
 * collection would free if they were gone.
 */
import type { PruneReport } from '../engine/index.js';
import { CofferError, isCofferError } from '../errors/coffer-error.js';
import { ACTIVE_STATES, type Job } from '../jobs/job.js';
import type { ExecutionContext, ExecutionResult } from '../jobs/runner.js';
import { hasRetentionRules } from '../scheduler/retention.js';
import type { AppContext } from './context.js';
import { planVaultRetention, type ItemRetentionPlan } from './retention.js';
import { openVaultRepository } from './vaults.js';

/** Points listed by name in a job's result; the counters always cover all of them. */
const LISTED_POINTS = 500;
/** Snapshots forgotten per step between cancel checks. */
const FORGET_BATCH = 50;

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new CofferError('JobCancelled', 'the prune was cancelled', {});
}

export interface PruneJobItem {
  item: string;
  policy: string | null;
  rules: string | null;
  kept: number;
  forgotten: number;
}

export interface PruneJobResult {
  dryRun: boolean;
  vault: string;
  /** Points retention forgot (or, in a dry run, would forget). */
  pointsForgotten: number;
  pointsKept: number;
  /** Points retention would forget that an active restore reads: kept until a later prune. */
  pointsHeldForRestores: number;
  items: PruneJobItem[];
  /** The first points forgotten, newest first per item: id, item name, snapshot time (ISO). */
  forgotten: { pointId: string; item: string; snapshotTime: string }[];
  /** The engine's garbage collection: packs deleted, bytes freed, repacking, packs still waiting. */
  gc: PruneReport;
}

export interface PruneHooks {
  onPruneResult?: (r: PruneJobResult) => void;
}

export async function runPruneJob(
  app: AppContext,
  job: Job,
  ctx: ExecutionContext,
  hooks: PruneHooks = {},
): Promise<ExecutionResult> {
  const vault = await app.store.getVault(job.vaultId);
  const dryRun = job.params.dryRun === true;
  const repo = await openVaultRepository(app, vault);
  throwIfCancelled(ctx.signal);

  const plans = await planVaultRetention(app, vault.id);
  // A point that an active restore reads (or is about to) stays until a later prune: removing its
  // snapshot now would fail that restore. (A restore admitted while this prune forgets can still
  // lose that race and fail with PointNotFound; it never reads a half-deleted point.)
  const restoring = new Set(
    (
      await app.store.listJobs({
        vaultId: vault.id,
        operations: ['restore'],
        states: [...ACTIVE_STATES],
        limit: 500,
      })
    )
      .map((j) => j.params.pointId)
      .filter((id): id is string => typeof id === 'string'),
  );
  const held = (p: ItemRetentionPlan) => p.forget.filter((point) => restoring.has(point.id)).length;
  const forget = plans.flatMap((p) =>
    p.forget.filter((point) => !restoring.has(point.id)).map((point) => ({ point, item: p.itemName })),
  );
  const ids = forget.map((f) => f.point.id);
  // A prune moves no source bytes: its progress is steps of the current phase (points forgotten,
  // snapshots walked, blobs repacked, packs swept).
  const report = (done: number, total: number) =>
    ctx.reportProgress({ filesDone: done, filesTotal: total, bytesDone: 0, bytesTotal: null });

  if (!dryRun) {
    report(0, ids.length);
    for (let i = 0; i < ids.length; i += FORGET_BATCH) {
      // Between batches only: a batch is removed from storage and catalog together.
      throwIfCancelled(ctx.signal);
      const batch = ids.slice(i, i + FORGET_BATCH);
      await repo.forgetSnapshots(batch);
      await app.store.deletePoints(batch);
      report(Math.min(ids.length, i + batch.length), ids.length);
    }
  }

  const gc = await repo.prune({
    dryRun,
    dryRunForget: dryRun ? ids : undefined,
    signal: ctx.signal,
    onProgress: (p) => report(p.done, p.total),
    backupsRunningAtHaveEnded: async (markTime) => !(await app.store.dataJobRunningSince(vault.id, markTime)),
  });

  const result: PruneJobResult = {
    dryRun,
    vault: vault.name,
    pointsForgotten: ids.length,
    pointsKept: plans.reduce((n, p) => n + p.kept + held(p), 0),
    pointsHeldForRestores: plans.reduce((n, p) => n + held(p), 0),
    items: plans.map((p) => ({
      item: p.itemName,
      policy: p.policy,
      rules: p.rules,
      kept: p.kept + held(p),
      forgotten: p.forget.length - held(p),
    })),
    forgotten: forget.slice(0, LISTED_POINTS).map((f) => ({
      pointId: f.point.id,
      item: f.item,
      snapshotTime: new Date(f.point.snapshotTime).toISOString(),
    })),
    gc,
  };
  hooks.onPruneResult?.(result);
  return { result: { ...result } };
}

/**
 * After a scheduled backup of an item whose policy has retention rules, queue a prune of the
 * backup's vault (trigger `schedule`), unless a prune of that vault was queued within
 * `minIntervalMs` (dry runs and cancelled prunes do not count): retention then takes effect
 * without a separate timer, at most once per interval per vault. With several servers, the
 * one-prune-per-vault index admits one of them; the others' attempts end as PruneInProgress,
 * which is not an error here. Returns the queued prune, or null.
 */
export async function pruneAfterScheduledBackup(
  app: AppContext,
  job: Job,
  minIntervalMs: number,
): Promise<Job | null> {
  if (job.operation !== 'backup' || job.trigger !== 'schedule' || !job.itemId) return null;
  const ended = await app.store.getJob(job.id);
  if (ended.state !== 'completed' && ended.state !== 'completed_with_warnings') return null;
  const item = await app.store.getItem(job.itemId);
  if (!item.policyId) return null;
  const policy = await app.store.getPolicy(item.policyId);
  if (!hasRetentionRules(policy.retention)) return null;
  const recent = await app.store.listJobs({
    vaultId: job.vaultId,
    operations: ['prune'],
    since: app.clock.now() - minIntervalMs,
    limit: 50,
  });
  if (recent.some((p) => p.params.dryRun !== true && p.state !== 'cancelled')) return null;
  try {
    const a = await app.store.admit({
      operation: 'prune',
      itemId: null,
      vaultId: job.vaultId,
      trigger: 'schedule',
      requestedBy: `scheduler: after backup ${job.id} of '${item.name}' (policy ${policy.name})`,
      params: { dryRun: false },
    });
    return a.job;
  } catch (err) {
    if (isCofferError(err, 'PruneInProgress')) return null;
    throw err;
  }
}
