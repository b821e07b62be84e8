/** mapLimit and mapLanes (src/engine/concurrency.ts): bounds, order, independence of lanes, failure. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { mapLanes, mapLimit } from '../../src/engine/concurrency.js';

interface Item {
  lane: number;
  n: number;
}

const items: Item[] = Array.from({ length: 40 }, (_, n) => ({ lane: n % 3 === 0 ? 1 : 0, n }));

test('each lane runs at most its limit at once, and results keep the items order', async () => {
  const running = [0, 0];
  const most = [0, 0];
  const out = await mapLanes(
    items,
    (item) => item.lane,
    [4, 2],
    async (item) => {
      running[item.lane]!++;
      most[item.lane] = Math.max(most[item.lane]!, running[item.lane]!);
      await sleep(1 + (item.n % 4));
      running[item.lane]!--;
      return item.n * 10;
    },
  );
  assert.deepEqual(
    out,
    items.map((item) => item.n * 10),
  );
  assert.deepEqual(most, [4, 2]);
});

test('an item waiting in one lane never holds up another lane', { timeout: 5000 }, async () => {
  // The lane-1 item can only finish after every lane-0 item has: with one shared limit of 1 it
  // would wait forever; with lanes it does not.
  let filesDone = 0;
  const files = Array.from({ length: 6 }, (_, n) => ({ lane: 0, n }));
  let release!: () => void;
  const allFilesDone = new Promise<void>((resolve) => (release = resolve));
  const out = await mapLanes(
    [{ lane: 1, n: -1 }, ...files],
    (item) => item.lane,
    [1, 1],
    async (item) => {
      if (item.lane === 1) {
        await allFilesDone;
        return 'dir';
      }
      await sleep(1);
      if (++filesDone === files.length) release();
      return `file ${item.n}`;
    },
  );
  assert.deepEqual(out, ['dir', ...files.map((f) => `file ${f.n}`)]);
});

test('a failure in one lane stops both from starting more, and the call settles after the running ones', async () => {
  const started: number[] = [];
  const finished: number[] = [];
  const failing = 3; // lane 1
  await assert.rejects(
    mapLanes(
      items,
      (item) => item.lane,
      [2, 1],
      async (item) => {
        started.push(item.n);
        if (item.n === failing) throw new Error('boom');
        await sleep(5);
        finished.push(item.n);
        return item.n;
      },
    ),
    /boom/,
  );
  // Everything that started, but the failing item, ran to its end before the call settled.
  assert.deepEqual(
    [...finished].sort((a, b) => a - b),
    started.filter((n) => n !== failing).sort((a, b) => a - b),
  );
  assert.ok(started.length < 10, `few items started after the failure (${started.length})`);
});

test('mapLimit is one lane', async () => {
  let running = 0;
  let most = 0;
  const out = await mapLimit([5, 4, 3, 2, 1], 2, async (n) => {
    running++;
    most = Math.max(most, running);
    await sleep(n);
    running--;
    return n * 2;
  });
  assert.deepEqual(out, [10, 8, 6, 4, 2]);
  assert.equal(most, 2);
});
