/**
 * Job ids (src/jobs/ids.ts) sort by creation: the jobs view and its cursor rely on the id alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newId } from '../../src/jobs/ids.js';

test('ids made in one millisecond keep their order, however many come before', () => {
  // Several rounds in a row: the counter of the old scheme wrapped somewhere in 32,768 ids.
  for (let round = 0; round < 4; round++) {
    const now = Date.parse('2026-11-25T17:05:00Z') + round;
    const ids = Array.from({ length: 16384 }, () => newId('j', now));
    assert.deepEqual([...ids].sort(), ids, `millisecond ${round}`);
    assert.equal(new Set(ids).size, ids.length);
  }
});

test('a later millisecond sorts after an earlier one, and ids stay short and typeable', () => {
  const a = newId('j', 1_000_000);
  const b = newId('j', 1_000_001);
  assert.ok(a < b);
  assert.match(a, /^j_[0-9a-hjkmnp-tv-z]{16}$/);
});
