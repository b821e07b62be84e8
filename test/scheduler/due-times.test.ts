/**
 * nextDue and latestDue remember one answer range per schedule; whatever order instants are
 * asked in (ticks move forward, items' cursors lag behind, DST shifts the wall clock), every
 * answer must equal a fresh evaluation of the cron expression.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cron } from 'croner';
import { latestDue, nextDue } from '../../src/scheduler/schedule.js';

function fresh(schedule: string, timezone: string) {
  const c = new Cron(schedule, { timezone, paused: true });
  return {
    next: (after: number) => c.nextRun(new Date(after))?.getTime() ?? null,
    latest: (at: number) => c.previousRuns(1, new Date(at + 1))[0]?.getTime() ?? null,
  };
}

test('memoised due times equal fresh cron evaluations for instants asked in any order', () => {
  const cases: [string, string][] = [
    ['*/15 * * * *', 'UTC'],
    ['30 2 * * *', 'Europe/Berlin'], // 02:30 does not exist on the spring-forward day
    ['0 1 * * 0', 'America/New_York'],
    ['0 0 1 1 *', 'UTC'],
  ];
  // Around the 2026 European spring DST change, in steps that hit due times exactly too.
  const start = Date.UTC(2026, 2, 28, 20, 0, 0);
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (const [schedule, zone] of cases) {
    const f = fresh(schedule, zone);
    const instants: number[] = [];
    for (let i = 0; i < 300; i++) instants.push(start + Math.floor(rand() * 3 * 86_400_000));
    // Exact due times and the instants around them are where off-by-one errors live.
    for (let t = f.next(start)!, i = 0; i < 20; i++, t = f.next(t)!) instants.push(t - 1, t, t + 1);
    for (const at of instants) {
      assert.equal(nextDue(schedule, zone, at), f.next(at), `nextDue(${schedule}, ${zone}, ${at})`);
      assert.equal(latestDue(schedule, zone, at), f.latest(at), `latestDue(${schedule}, ${zone}, ${at})`);
    }
  }
});
