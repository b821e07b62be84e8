import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { systemClock } from '../../src/jobs/clock.js';
import { LeaseKeeper } from '../../src/jobs/lease-keeper.js';
import type { JobStore } from '../../src/jobs/ports.js';
import { emptyProgress } from '../../src/jobs/runner.js';

function keeperWith(heartbeat: JobStore['heartbeat'], leaseMs: number): LeaseKeeper {
  const store = { heartbeat } as unknown as JobStore;
  return new LeaseKeeper({
    store,
    lease: { jobId: 'j1', owner: 'w1', token: 1 },
    leaseMs,
    clock: systemClock,
    intervalMs: 20,
    progress: emptyProgress,
  });
}

function aborted(signal: AbortSignal, timeoutMs: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`not aborted within ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve(Date.now() - started);
    });
  });
}

describe('lease keeper', () => {
  it('stops the work when the lease runs out while a heartbeat hangs (a partition, not an error)', async () => {
    let calls = 0;
    // The first heartbeat succeeds; the next never answers, as on a black-holed connection.
    const keeper = keeperWith(async () => {
      if (calls++ === 0) return { held: true, cancelRequested: false };
      return new Promise(() => undefined);
    }, 300);
    keeper.start();
    try {
      const ms = await aborted(keeper.signal, 2000);
      assert.equal(keeper.stopReason, 'lease-lost');
      assert.ok(ms >= 250 && ms < 1000, `aborted after ${ms} ms with a 300 ms lease`);
    } finally {
      keeper.stop();
    }
  });

  it('keeps working while heartbeats fail fast but the last renewed lease still holds, then stops', async () => {
    let ok = true;
    const keeper = keeperWith(async () => {
      if (ok) return { held: true, cancelRequested: false };
      throw new Error('ECONNRESET');
    }, 300);
    keeper.start();
    try {
      await new Promise((r) => setTimeout(r, 100));
      ok = false;
      const cutAt = Date.now();
      await aborted(keeper.signal, 2000);
      const ms = Date.now() - cutAt;
      assert.equal(keeper.stopReason, 'lease-lost');
      assert.ok(ms >= 200, `stopped only once the lease ran out (${ms} ms)`);
    } finally {
      keeper.stop();
    }
  });

  it('reports a cancel seen by a heartbeat', async () => {
    const keeper = keeperWith(async () => ({ held: true, cancelRequested: true }), 5000);
    keeper.start();
    try {
      await aborted(keeper.signal, 2000);
      assert.equal(keeper.stopReason, 'cancelled');
    } finally {
      keeper.stop();
    }
  });
});
