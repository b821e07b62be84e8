/**
 * Fires scheduled backups. Every `coffer serve` process runs one; no leader is elected: the
 * catalog makes each due time of each item fire at most once (see CatalogStore.fireScheduled).
 * Missed runs are not replayed in bulk: at most one catch-up run when the latest due time is
 * within the policy's catch-up window, and the older ones recorded once as missed.
 */
import type { CatalogStore, ScheduleOutcome, ScheduleStep } from '../catalog/store.js';
import type { Clock } from '../jobs/clock.js';
import { jitterMs, latestDue, nextDue } from './schedule.js';

/** How many missed due times are counted one by one before the message says "at least". */
const MISSED_COUNT_CAP = 1000;

export interface TickResult extends ScheduleOutcome {
  promoted: number;
  considered: number;
}

export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<TickResult> | null = null;

  constructor(
    private readonly store: CatalogStore,
    private readonly clock: Clock,
    private readonly opts: {
      batch?: number;
      onTick?: (r: TickResult) => void;
      onError?: (err: unknown) => void;
    } = {},
  ) {}

  start(intervalMs = 250): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.tick()
        .then((r) => {
          this.opts.onTick?.(r);
          return r;
        })
        .catch((err: unknown) => {
          this.opts.onError?.(err);
          return null as unknown as TickResult;
        })
        .finally(() => (this.running = null));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  async tick(): Promise<TickResult> {
    const now = this.clock.now();
    const candidates = await this.store.scheduleCandidates(now, this.opts.batch ?? 20_000);
    const steps: ScheduleStep[] = [];
    for (const c of candidates) {
      const p = c.policy;
      const jitter = jitterMs(c.itemId, p.jitterSeconds);
      if (!c.cursor || c.cursor.policyId !== p.id) {
        // A newly scheduled item starts with the next due time; nothing before it is "missed".
        const next = nextDue(p.schedule, p.timezone, now);
        if (next !== null)
          steps.push({
            itemId: c.itemId,
            vaultId: c.vaultId,
            policy: p,
            fromDue: null,
            nextDue: next,
            nextFireAt: next + jitter,
            fire: null,
            missed: null,
          });
        continue;
      }
      const due = c.cursor.nextDueAt;
      const latest = Math.max(due, latestDue(p.schedule, p.timezone, now) ?? due);
      const withinWindow = now - latest <= p.catchUpMs + jitter;
      let missed: ScheduleStep['missed'] = null;
      const lastMissed = withinWindow ? previousDue(p.schedule, p.timezone, due, latest) : latest;
      if (lastMissed !== null) {
        missed = { first: due, last: lastMissed, count: countDue(p.schedule, p.timezone, due, lastMissed) };
      }
      const next = nextDue(p.schedule, p.timezone, Math.max(latest, now));
      steps.push({
        itemId: c.itemId,
        vaultId: c.vaultId,
        policy: p,
        fromDue: due,
        // A schedule that has ended parks the cursor far in the future.
        nextDue: next ?? Number.MAX_SAFE_INTEGER,
        nextFireAt: next === null ? Number.MAX_SAFE_INTEGER : next + jitter,
        fire: withinWindow ? latest : null,
        missed,
      });
    }
    const outcome = await this.store.fireScheduled(steps);
    const promoted = await this.store.promoteDeferred();
    return { ...outcome, promoted, considered: candidates.length };
  }
}

/** The last due time before `latest` and at or after `from`, or null when `latest` is the first. */
function previousDue(schedule: string, tz: string, from: number, latest: number): number | null {
  if (latest <= from) return null;
  return latestDue(schedule, tz, latest - 1);
}

function countDue(schedule: string, tz: string, from: number, to: number): number {
  let n = 1;
  let t = from;
  while (n < MISSED_COUNT_CAP) {
    const next = nextDue(schedule, tz, t);
    if (next === null || next > to) break;
    t = next;
    n++;
  }
  return n;
}
