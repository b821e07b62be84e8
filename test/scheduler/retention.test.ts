/**
 * Retention (restic `forget` semantics, GFS) evaluated in the policy's time zone, including the
 * days clocks change, zones with non-hour offsets and ISO weeks across a year boundary.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyRetention,
  describeRetention,
  hasRetentionRules,
  isoWeek,
  LocalCalendar,
  type Retention,
} from '../../src/scheduler/retention.js';

const at = (iso: string, id = iso) => ({ id, snapshotTime: Date.parse(iso) });

/** The ids kept, newest first, each with its reasons as `rule:period`. */
function kept(points: { id: string; snapshotTime: number }[], r: Retention, tz = 'UTC') {
  return applyRetention(points, r, tz)
    .filter((d) => d.keep)
    .map((d) => `${d.point.id} ${d.reasons.map((x) => `${x.rule}:${x.period}`).join(',')}`);
}

describe('retention', () => {
  test('keep-last keeps the N newest, whatever the input order, and names their rank', () => {
    const pts = [1, 5, 3, 2, 4].map((d) => at(`2024-01-0${d}T12:00:00Z`, `p${d}`));
    assert.deepEqual(kept(pts, { last: 3 }), ['p5 last:#1', 'p4 last:#2', 'p3 last:#3']);
    const all = applyRetention(pts, { last: 3 }, 'UTC');
    assert.deepEqual(
      all.map((d) => [d.point.id, d.keep]),
      [
        ['p5', true],
        ['p4', true],
        ['p3', true],
        ['p2', false],
        ['p1', false],
      ],
    );
  });

  test('no rules keeps everything (an empty policy never forgets)', () => {
    const pts = [at('2024-01-01T00:00:00Z'), at('2024-01-02T00:00:00Z')];
    assert.equal(hasRetentionRules({}), false);
    assert.equal(hasRetentionRules({ daily: 0, last: 0 }), false);
    assert.equal(describeRetention({ daily: 0 }), null);
    assert.equal(describeRetention({ weekly: 4, last: 2 }), 'last 2, weekly 4');
    assert.ok(applyRetention(pts, { daily: 0 }, 'UTC').every((d) => d.keep && d.reasons.length === 0));
  });

  test('daily keeps the newest point of each local day, in the policy time zone', () => {
    // 22:30Z and 23:30Z on March 9 are one UTC day, but in Berlin (UTC+1) 23:30 on the 9th and
    // 00:30 on the 10th.
    const pts = [
      at('2024-03-09T21:00:00Z', 'a'),
      at('2024-03-09T22:30:00Z', 'b'),
      at('2024-03-09T23:30:00Z', 'c'),
    ];
    assert.deepEqual(kept(pts, { daily: 5 }, 'UTC'), ['c daily:2024-03-09']);
    assert.deepEqual(kept(pts, { daily: 5 }, 'Europe/Berlin'), ['c daily:2024-03-10', 'b daily:2024-03-09']);
    // Counting periods, not points: daily 1 keeps only the newest day's newest point.
    assert.deepEqual(kept(pts, { daily: 1 }, 'Europe/Berlin'), ['c daily:2024-03-10']);
  });

  test('a 25-hour day (clocks go back) is one day; its repeated hour is two hours', () => {
    // Europe/Berlin, 2024-10-27: 03:00 CEST becomes 02:00 CET. 00:30Z is 02:30 CEST, 01:30Z is 02:30 CET.
    const cal = new LocalCalendar('Europe/Berlin');
    assert.equal(cal.periods(Date.parse('2024-10-27T00:30:00Z')).hourly, '2024-10-27T02+02:00');
    assert.equal(cal.periods(Date.parse('2024-10-27T01:30:00Z')).hourly, '2024-10-27T02+01:00');
    const pts = [
      at('2024-10-26T22:30:00Z', 'first-of-day'), // 00:30 CEST on the 27th
      at('2024-10-27T00:30:00Z', 'cest'),
      at('2024-10-27T01:30:00Z', 'cet'),
      at('2024-10-27T22:30:00Z', 'last-of-day'), // 23:30 CET on the 27th, 24 h after the first
    ];
    assert.deepEqual(kept(pts, { daily: 3 }, 'Europe/Berlin'), ['last-of-day daily:2024-10-27']);
    assert.deepEqual(kept(pts, { hourly: 3 }, 'Europe/Berlin'), [
      'last-of-day hourly:2024-10-27T23+01:00',
      'cet hourly:2024-10-27T02+01:00',
      'cest hourly:2024-10-27T02+02:00',
    ]);
  });

  test('a 23-hour day (clocks go forward) has no 02:00 hour and is still one day', () => {
    // Europe/Berlin, 2024-03-31: 02:00 CET becomes 03:00 CEST. 00:30Z is 01:30 CET, 01:30Z is 03:30 CEST.
    const pts = [
      at('2024-03-30T23:10:00Z', 'h00'),
      at('2024-03-31T00:30:00Z', 'h01'),
      at('2024-03-31T01:30:00Z', 'h03'),
      at('2024-03-31T21:59:00Z', 'h23'),
    ];
    assert.deepEqual(kept(pts, { hourly: 10 }, 'Europe/Berlin'), [
      'h23 hourly:2024-03-31T23+02:00',
      'h03 hourly:2024-03-31T03+02:00',
      'h01 hourly:2024-03-31T01+01:00',
      'h00 hourly:2024-03-31T00+01:00',
    ]);
    assert.deepEqual(kept(pts, { daily: 10 }, 'Europe/Berlin'), ['h23 daily:2024-03-31']);
    // 22:00Z on the 31st is already April 1 in Berlin.
    assert.equal(
      new LocalCalendar('Europe/Berlin').periods(Date.parse('2024-03-31T22:00:00Z')).daily,
      '2024-04-01',
    );
  });

  test('hours in a zone with a 45-minute offset start at :15 UTC', () => {
    // Asia/Kathmandu is UTC+05:45.
    const pts = [
      at('2024-05-01T00:10:00Z', 'a'),
      at('2024-05-01T00:20:00Z', 'b'),
      at('2024-05-01T01:10:00Z', 'c'),
    ];
    // a is 05:55 local; b (06:05) and c (06:55) share an hour, so only c, the newer, stays.
    assert.deepEqual(kept(pts, { hourly: 5 }, 'Asia/Kathmandu'), [
      'c hourly:2024-05-01T06+05:45',
      'a hourly:2024-05-01T05+05:45',
    ]);
  });

  test('weekly uses ISO weeks in the local zone, across a year boundary', () => {
    // Sunday 2024-03-10 23:00 in New York is Monday 03:00Z: week 10 locally, week 11 in UTC.
    const sundayNight = at('2024-03-11T03:00:00Z', 'sun');
    assert.equal(new LocalCalendar('America/New_York').periods(sundayNight.snapshotTime).weekly, '2024-W10');
    assert.equal(new LocalCalendar('UTC').periods(sundayNight.snapshotTime).weekly, '2024-W11');
    assert.deepEqual(isoWeek(2024, 12, 30), { year: 2025, week: 1 });
    assert.deepEqual(isoWeek(2021, 1, 3), { year: 2020, week: 53 });
    assert.deepEqual(isoWeek(2026, 1, 1), { year: 2026, week: 1 });
    const pts = [
      at('2024-12-27T10:00:00Z', 'fri'),
      at('2024-12-30T10:00:00Z', 'mon'),
      at('2025-01-02T10:00:00Z', 'thu'),
    ];
    assert.deepEqual(kept(pts, { weekly: 2 }), ['thu weekly:2025-W01', 'fri weekly:2024-W52']);
    assert.deepEqual(kept(pts, { yearly: 2 }), ['thu yearly:2025', 'mon yearly:2024']);
  });

  test('GFS over three years of daily points keeps the union of every rule, each point naming its rules', () => {
    const pts = [];
    for (let t = Date.parse('2022-01-01T06:00:00Z'); t <= Date.parse('2024-12-31T06:00:00Z'); t += 86_400_000)
      pts.push({ id: new Date(t).toISOString().slice(0, 10), snapshotTime: t });
    const r: Retention = { last: 2, daily: 7, weekly: 4, monthly: 12, yearly: 3 };
    const decisions = applyRetention(pts, r, 'Europe/Berlin');
    const keptIds = decisions.filter((d) => d.keep).map((d) => d.point.id);
    // Days: Dec 25-31. Weeks (newest point of each): 2025-W01 (the 31st), W52 (Sunday the 29th),
    // W51 (the 22nd), W50 (the 15th). Months: the last day of Dec..Jan 2024. Years: 2024 (the
    // 31st), 2023-12-31, 2022-12-31.
    const expected = new Set([
      ...['25', '26', '27', '28', '29', '30', '31'].map((d) => `2024-12-${d}`),
      '2024-12-22',
      '2024-12-15',
      ...[
        '01-31',
        '02-29',
        '03-31',
        '04-30',
        '05-31',
        '06-30',
        '07-31',
        '08-31',
        '09-30',
        '10-31',
        '11-30',
      ].map((md) => `2024-${md}`),
      '2023-12-31',
      '2022-12-31',
    ]);
    assert.deepEqual(new Set(keptIds), expected);
    const newest = decisions[0]!;
    assert.deepEqual(
      newest.reasons.map((x) => x.rule),
      ['last', 'daily', 'weekly', 'monthly', 'yearly'],
    );
    const dec29 = decisions.find((d) => d.point.id === '2024-12-29')!;
    assert.deepEqual(dec29.reasons, [
      { rule: 'daily', period: '2024-12-29' },
      { rule: 'weekly', period: '2024-W52' },
    ]);
    assert.deepEqual(decisions.find((d) => d.point.id === '2022-12-31')!.reasons, [
      { rule: 'yearly', period: '2022' },
    ]);
    assert.equal(decisions.filter((d) => !d.keep).length, pts.length - expected.size);
  });

  test('equal times are ordered by id, so the answer never depends on input order', () => {
    const a = at('2024-01-01T00:00:00Z', 'a');
    const b = at('2024-01-01T00:00:00Z', 'b');
    assert.deepEqual(kept([b, a], { last: 1 }), ['a last:#1']);
    assert.deepEqual(kept([a, b], { last: 1 }), ['a last:#1']);
  });
});
