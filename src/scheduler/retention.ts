/**
 * Retention rules like restic's `forget`: keep the N newest points (`last`), and the newest point
 * of each of the N newest hours, days, ISO weeks, months and years that have points (GFS).
 * Periods are calendar periods in the policy's time zone, so "daily" means the operator's days,
 * not UTC days. Pure: no clock, no catalog; the same points and rules always give the same answer.
 *
 * Time-zone choices (see test/scheduler/retention.test.ts):
 *   - a day, week, month or year is the local calendar period, however many hours it has (a DST
 *     day of 23 or 25 hours is still one day);
 *   - an hour is a real hour: its period carries the UTC offset, so the local hour that repeats
 *     when clocks go back counts as two hours and neither is merged into the other.
 */

export const RETENTION_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type RetentionRule = (typeof RETENTION_RULES)[number];
/** How many points (last) or periods (the others) each rule keeps; absent or 0 = the rule is off. */
export type Retention = Partial<Record<RetentionRule, number>>;

const PERIOD_RULES = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type PeriodRule = (typeof PERIOD_RULES)[number];

/** One reason a point is kept: the rule, and the period it is the newest point of. */
export interface KeepReason {
  rule: RetentionRule;
  /** `#3` (third newest) for `last`; 2024-03-10T01+01:00, 2024-03-10, 2024-W10, 2024-03, 2024. */
  period: string;
}

export interface RetentionDecision<P> {
  point: P;
  keep: boolean;
  /** Every rule that keeps the point (empty when it goes, or when no rule is set). */
  reasons: KeepReason[];
}

export interface RetainablePoint {
  id: string;
  /** Epoch ms. */
  snapshotTime: number;
}

export function isRetentionRule(v: string): v is RetentionRule {
  return (RETENTION_RULES as readonly string[]).includes(v);
}

/** False when no rule keeps anything: then nothing is ever forgotten (restic refuses such a forget). */
export function hasRetentionRules(r: Retention): boolean {
  return RETENTION_RULES.some((rule) => (r[rule] ?? 0) > 0);
}

/** `last 3, daily 7`, or null when the policy has no rules. */
export function describeRetention(r: Retention): string | null {
  const parts = RETENTION_RULES.filter((rule) => (r[rule] ?? 0) > 0).map((rule) => `${rule} ${r[rule]}`);
  return parts.length ? parts.join(', ') : null;
}

/**
 * Decides, for every point, whether the rules keep it and why. Returns the points newest first
 * (ties broken by id, so the answer never depends on input order). Without any rule, every point
 * is kept (with no reasons): forgetting everything is never what an empty policy means.
 */
export function applyRetention<P extends RetainablePoint>(
  points: readonly P[],
  retention: Retention,
  timeZone: string,
): RetentionDecision<P>[] {
  const sorted = [...points].sort(
    (a, b) => b.snapshotTime - a.snapshotTime || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  if (!hasRetentionRules(retention)) return sorted.map((point) => ({ point, keep: true, reasons: [] }));
  const calendar = new LocalCalendar(timeZone);
  const last = retention.last ?? 0;
  const left: Record<PeriodRule, number> = {
    hourly: retention.hourly ?? 0,
    daily: retention.daily ?? 0,
    weekly: retention.weekly ?? 0,
    monthly: retention.monthly ?? 0,
    yearly: retention.yearly ?? 0,
  };
  const lastPeriod: Partial<Record<PeriodRule, string>> = {};
  return sorted.map((point, i) => {
    const reasons: KeepReason[] = [];
    if (i < last) reasons.push({ rule: 'last', period: `#${i + 1}` });
    const periods = calendar.periods(point.snapshotTime);
    for (const rule of PERIOD_RULES) {
      if (left[rule] <= 0) continue;
      // Newest first: the first point seen in a period is that period's newest point.
      const period = periods[rule];
      if (period === lastPeriod[rule]) continue;
      lastPeriod[rule] = period;
      left[rule]--;
      reasons.push({ rule, period });
    }
    return { point, keep: reasons.length > 0, reasons };
  });
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Calendar periods of instants in one IANA time zone (Intl: the platform's tz database). */
export class LocalCalendar {
  private readonly fmt: Intl.DateTimeFormat;

  constructor(readonly timeZone: string) {
    this.fmt = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** Local wall-clock fields and the UTC offset (minutes east) at instant `t` (epoch ms). */
  local(t: number): { year: number; month: number; day: number; hour: number; offsetMinutes: number } {
    const f: Record<string, number> = {};
    for (const part of this.fmt.formatToParts(new Date(t))) {
      if (part.type !== 'literal') f[part.type] = Number(part.value);
    }
    const wall = Date.UTC(f.year!, f.month! - 1, f.day!, f.hour!, f.minute!, f.second!);
    const offsetMinutes = Math.round((wall - Math.floor(t / 1000) * 1000) / 60_000);
    return { year: f.year!, month: f.month!, day: f.day!, hour: f.hour!, offsetMinutes };
  }

  periods(t: number): Record<PeriodRule, string> {
    const l = this.local(t);
    const sign = l.offsetMinutes < 0 ? '-' : '+';
    const off = Math.abs(l.offsetMinutes);
    const date = `${pad(l.year, 4)}-${pad(l.month)}-${pad(l.day)}`;
    const week = isoWeek(l.year, l.month, l.day);
    return {
      hourly: `${date}T${pad(l.hour)}${sign}${pad(Math.floor(off / 60))}:${pad(off % 60)}`,
      daily: date,
      weekly: `${pad(week.year, 4)}-W${pad(week.week)}`,
      monthly: `${pad(l.year, 4)}-${pad(l.month)}`,
      yearly: pad(l.year, 4),
    };
  }
}

/** ISO 8601 week of a calendar date: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const d = new Date(Date.UTC(year, month - 1, day));
  const dow = d.getUTCDay() || 7;
  // The Thursday of this week decides which year the week belongs to.
  d.setUTCDate(d.getUTCDate() + 4 - dow);
  const isoYear = d.getUTCFullYear();
  const week = Math.ceil(((d.getTime() - Date.UTC(isoYear, 0, 1)) / 86_400_000 + 1) / 7);
  return { year: isoYear, week };
}
