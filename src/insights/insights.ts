/**
 * Insights (SPEC §3): coffer reads its own job history and warns before conflicts happen.
 * Pure functions over catalog data, so every rule is testable with a manual clock.
 */
import type { Item, Policy } from '../catalog/store.js';
import { articleFor, isErrorCode } from '../errors/index.js';
import { describeTrigger, type Job } from '../jobs/job.js';
import { intervalMs } from '../scheduler/schedule.js';

export type InsightKind =
  | 'schedule-collision-risk'
  | 'blocked-by-other-vault'
  | 'heartbeat-stopped'
  | 'running-long'
  | 'failing-repeatedly';

export interface Insight {
  kind: InsightKind;
  severity: 'warning' | 'critical';
  title: string;
  items: { id: string; name: string }[];
  evidence: Record<string, unknown>;
  recommendation: string;
  docs: { title: string; href: string }[];
}

export interface InsightInput {
  now: number;
  /** How often a healthy worker heartbeats; a job silent for much longer has a stalled worker. */
  heartbeatMs: number;
  items: (Item & { vaultName: string; policy: Policy | null })[];
  /** Recent backup jobs, any order. */
  recent: Job[];
  active: Job[];
}

const DOCS = {
  spacing: {
    title: 'Space schedules by backup duration',
    href: 'docs/best-practices.md#space-schedules-by-backup-duration',
  },
  perf: {
    title: 'Long backups and their schedule',
    href: 'docs/backup-performance.md#long-backups-and-their-schedule',
  },
  moved: {
    title: 'Items moved to another vault',
    href: 'docs/best-practices.md#items-moved-to-another-vault',
  },
  leases: { title: 'Leases and WorkerLost', href: 'docs/best-practices.md#leases-and-workerlost' },
  overlap: { title: 'Choose an overlap policy', href: 'docs/best-practices.md#choose-an-overlap-policy' },
};

/** Share of the schedule interval a backup may take before the next run is at risk. */
export const COLLISION_SHARE = 0.8;
const SAMPLE = 10;
const FAILURE_STREAK = 3;

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;
const human = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : minutes(ms));

export function computeInsights(input: InsightInput): Insight[] {
  const out: Insight[] = [];
  const byItem = new Map<string, Job[]>();
  for (const j of input.recent) {
    if (!j.itemId) continue;
    const list = byItem.get(j.itemId) ?? [];
    list.push(j);
    byItem.set(j.itemId, list);
  }
  for (const list of byItem.values()) list.sort((a, b) => b.createdAt - a.createdAt);
  const itemById = new Map(input.items.map((i) => [i.id, i]));

  for (const item of input.items) {
    const jobs = byItem.get(item.id) ?? [];
    const finished = jobs.filter(
      (j) =>
        (j.state === 'completed' || j.state === 'completed_with_warnings') &&
        j.startedAt !== null &&
        j.endedAt !== null,
    );
    const durations = finished.slice(0, SAMPLE).map((j) => j.endedAt! - j.startedAt!);

    // Schedule collision risk: recent durations against the schedule interval, or skips already seen.
    if (item.policy && !item.policy.paused) {
      const interval = intervalMs(item.policy.schedule, item.policy.timezone, input.now);
      const p90 = durations.length ? percentile(durations, 0.9) : 0;
      const skipped = jobs.filter(
        (j) => j.state === 'skipped' && j.errorCode === 'UserErrorBackupOperationInProgress',
      );
      const atRisk = interval !== null && durations.length >= 2 && p90 > COLLISION_SHARE * interval;
      if (atRisk || skipped.length > 0) {
        out.push({
          kind: 'schedule-collision-risk',
          severity: skipped.length > 0 || (interval !== null && p90 >= interval) ? 'critical' : 'warning',
          title: `Backups of '${item.name}' ${p90 >= (interval ?? Infinity) ? 'outlast' : 'approach'} their schedule interval`,
          items: [{ id: item.id, name: item.name }],
          evidence: {
            policy: item.policy.name,
            schedule: item.policy.schedule,
            intervalMs: interval,
            p90DurationMs: p90,
            sampledBackups: durations.length,
            skippedRuns: skipped.length,
            lastSkipped: skipped[0]
              ? {
                  jobId: skipped[0].id,
                  at: new Date(skipped[0].createdAt).toISOString(),
                  blockingJobId: skipped[0].params.blockingJobId ?? null,
                }
              : null,
          },
          recommendation:
            interval !== null
              ? `The 90th percentile backup takes ${human(p90)} against a ${human(interval)} interval${skipped.length ? `, and ${skipped.length} scheduled run(s) were already skipped` : ''}. Space the schedule to at least ${human(Math.ceil(p90 / COLLISION_SHARE / 60_000) * 60_000)} (coffer policy update ${item.policy.name} --schedule …), make backups faster (see backup performance), or choose the queue-one overlap policy if every run matters.`
              : `${skipped.length} scheduled run(s) were skipped because the previous backup was still running; space the schedule or choose another overlap policy.`,
          docs: [DOCS.spacing, DOCS.perf, DOCS.overlap],
        });
      }
    }

    // Repeated failures: the newest FAILURE_STREAK finished backups all failed.
    const ended = jobs.filter(
      (j) => j.state === 'failed' || j.state === 'completed' || j.state === 'completed_with_warnings',
    );
    const streak = ended.slice(0, FAILURE_STREAK);
    if (streak.length === FAILURE_STREAK && streak.every((j) => j.state === 'failed')) {
      const counts = new Map<string, number>();
      for (const j of ended.filter((x) => x.state === 'failed'))
        counts.set(j.errorCode ?? 'InternalError', (counts.get(j.errorCode ?? 'InternalError') ?? 0) + 1);
      const [code, n] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]!;
      const article = isErrorCode(code) ? articleFor(code) : null;
      out.push({
        kind: 'failing-repeatedly',
        severity: 'critical',
        title: `Backups of '${item.name}' keep failing`,
        items: [{ id: item.id, name: item.name }],
        evidence: {
          lastFailures: streak.map((j) => ({ jobId: j.id, code: j.errorCode, message: j.errorMessage })),
          mostCommonCode: code,
          occurrences: n,
        },
        recommendation: `The most common error is ${code}${article ? ` (${article.title})` : ''}: ${article ? article.recommendedSteps[0] : 'see the job details'} Run \`coffer explain ${code}\` for every step.`,
        docs: article?.docs ?? [],
      });
    }

    // Unusually long: an active backup running far longer than this item's usual duration.
    const running = input.active.find(
      (j) => j.itemId === item.id && j.operation === 'backup' && j.startedAt !== null,
    );
    if (running && durations.length >= 3) {
      const typical = percentile(durations, 0.5);
      const elapsed = input.now - running.startedAt!;
      if (elapsed > Math.max(3 * typical, typical + 10 * 60_000)) {
        out.push({
          kind: 'running-long',
          severity: 'warning',
          title: `Backup ${running.id} of '${item.name}' runs far longer than usual`,
          items: [{ id: item.id, name: item.name }],
          evidence: {
            jobId: running.id,
            elapsedMs: elapsed,
            medianDurationMs: typical,
            progressBytes: running.bytesDone,
            bytesTotal: running.bytesTotal,
          },
          recommendation: `It has run ${human(elapsed)} against a usual ${human(typical)}. Check its progress (coffer job show ${running.id}); if it is stuck, cancel it (coffer job cancel ${running.id} --wait) and look at the source and storage.`,
          docs: [DOCS.perf],
        });
      }
    }
  }

  for (const job of input.active) {
    const item = job.itemId ? itemById.get(job.itemId) : undefined;
    // Blocked by a job in another vault: the item moved while its old job runs.
    if (item && job.operation === 'backup' && job.vaultId !== item.vaultId) {
      out.push({
        kind: 'blocked-by-other-vault',
        severity: 'warning',
        title: `'${item.name}' is blocked by a job in its previous vault`,
        items: [{ id: item.id, name: item.name }],
        evidence: {
          jobId: job.id,
          jobVaultId: job.vaultId,
          itemVault: item.vaultName,
          state: job.state,
          trigger: describeTrigger(job),
        },
        recommendation: `Job ${job.id} still runs in the vault the item was moved out of; new backups into '${item.vaultName}' are refused until it ends. Wait for it (coffer job show ${job.id} --follow) or cancel it (coffer job cancel ${job.id} --wait).`,
        docs: [DOCS.moved],
      });
    }
    // Heartbeat stopped: a leased job silent for much longer than the heartbeat interval.
    if (
      (job.state === 'in_progress' || job.state === 'cancelling') &&
      input.now - lastHeard(job) > 5 * input.heartbeatMs
    ) {
      out.push({
        kind: 'heartbeat-stopped',
        severity: 'critical',
        title: `Job ${job.id} has stopped heartbeating`,
        items: item ? [{ id: item.id, name: item.name }] : [],
        evidence: {
          jobId: job.id,
          worker: job.workerId,
          silentForMs: input.now - lastHeard(job),
          leaseExpiresAt: job.leaseExpiresAt ? new Date(job.leaseExpiresAt).toISOString() : null,
        },
        recommendation: `Its worker (${job.workerId ?? 'unknown'}) may be paused or cut off. The job ends WorkerLost when its lease expires; to free the item now, run coffer job release ${job.id} --force once you are sure the worker is gone.`,
        docs: [DOCS.leases],
      });
    }
  }
  return out.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'critical' ? -1 : 1));
}

/** When the worker last reported: every heartbeat renews the row. */
function lastHeard(job: Job): number {
  return job.updatedAt;
}
