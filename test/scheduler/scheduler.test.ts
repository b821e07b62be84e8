/**
 * The scheduler against real catalogs (SQLite and PostgreSQL) with a manual clock: each due
 * time fires once even with two schedulers, the overlap policies decide what happens to a run
 * that comes due while a backup is active, and missed runs are not replayed in bulk.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openCatalog } from '../../src/catalog/connect.js';
import { migrate } from '../../src/catalog/migrations.js';
import { CatalogStore, type Policy } from '../../src/catalog/store.js';
import { emptyProgress } from '../../src/jobs/runner.js';
import type { OverlapPolicy } from '../../src/scheduler/schedule.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';

class ManualClock {
  t = Date.UTC(2026, 10, 25, 11, 59, 30);
  now(): number {
    return this.t;
  }
  set(iso: string): void {
    this.t = Date.parse(iso);
  }
}

const MINUTE = 60_000;

for (const dialect of await dialects()) {
  describe(`scheduler (${dialect})`, () => {
    let tc: TestCatalog;
    let store: CatalogStore;
    let clock: ManualClock;
    let close: () => Promise<void>;
    let n = 0;

    before(async () => {
      tc = await createTestCatalog(dialect);
      const catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
      await migrate(catalog);
      clock = new ManualClock();
      store = new CatalogStore(catalog, clock);
      close = () => catalog.close();
    });
    after(async () => {
      await close();
      await tc.cleanup();
    });

    async function scheduled(
      overlap: OverlapPolicy,
      schedule = '*/10 * * * *',
      catchUpMs = 60 * MINUTE,
    ): Promise<{ itemId: string; policy: Policy }> {
      n++;
      const vault = await store.createVault({ name: `v${n}`, location: `/tmp/v${n}`, repositoryId: 'r' });
      const policy = await store.createPolicy({
        name: `p${n}`,
        schedule,
        timezone: 'UTC',
        jitterSeconds: 0,
        retention: {},
        overlap,
        catchUpMs,
        paused: false,
        limitReadBytesPerSec: null,
      });
      const item = await store.addItem({
        name: `i${n}`,
        vaultId: vault.id,
        sourcePath: `/data/${n}`,
        policyId: policy.id,
      });
      return { itemId: item.id, policy };
    }

    /** Claims this item's queued job, finishing other tests' leftovers on the way. */
    async function claimFor(itemId: string) {
      for (;;) {
        const c = await store.claimNext('w', 60 * MINUTE);
        assert.ok(c, `no queued job for ${itemId}`);
        if (c.job.itemId === itemId) return c;
        await store.finish(c.lease, { state: 'completed', progress: emptyProgress() });
      }
    }

    async function jobsOf(itemId: string) {
      return (await store.listJobs({ itemId, limit: 100 })).reverse();
    }

    test('each due time fires exactly once, with two schedulers racing on one catalog', async () => {
      const { itemId } = await scheduled('skip');
      const a = new Scheduler(store, clock);
      const b = new Scheduler(store, clock);
      clock.set('2026-11-25T12:00:30Z');
      await Promise.all([a.tick(), b.tick()]); // cursors start at the next due time: 12:10
      assert.equal((await jobsOf(itemId)).length, 0);
      clock.set('2026-11-25T12:10:00Z');
      await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
      const jobs = await jobsOf(itemId);
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0]!.state, 'queued');
      assert.equal(jobs[0]!.trigger, 'schedule');
      assert.equal(jobs[0]!.scheduledFor, Date.parse('2026-11-25T12:10:00Z'));
    });

    test('skip: a run due while the backup is active is a visible skipped job naming the blocker', async () => {
      const { itemId } = await scheduled('skip');
      const s = new Scheduler(store, clock);
      clock.set('2026-11-25T13:00:30Z');
      await s.tick();
      clock.set('2026-11-25T13:10:00Z');
      await s.tick();
      const [first] = await jobsOf(itemId);
      clock.set('2026-11-25T13:20:00Z');
      await s.tick();
      const jobs = await jobsOf(itemId);
      assert.equal(jobs.length, 2);
      const skipped = jobs[1]!;
      assert.equal(skipped.state, 'skipped');
      assert.equal(skipped.errorCode, 'UserErrorBackupOperationInProgress');
      assert.match(skipped.errorMessage ?? '', new RegExp(first!.id));
      assert.equal(skipped.params.blockingJobId, first!.id);
    });

    test('queue-one: one run waits and starts when the active one ends; further runs are skipped', async () => {
      const { itemId } = await scheduled('queue-one');
      const s = new Scheduler(store, clock);
      clock.set('2026-11-25T14:00:30Z');
      await s.tick();
      clock.set('2026-11-25T14:10:00Z');
      await s.tick();
      const claimed = await claimFor(itemId);
      clock.set('2026-11-25T14:20:00Z');
      await s.tick();
      clock.set('2026-11-25T14:30:00Z');
      await s.tick();
      let jobs = await jobsOf(itemId);
      assert.deepEqual(
        jobs.map((j) => j.state),
        ['in_progress', 'deferred', 'skipped'],
      );
      await store.finish(claimed.lease, { state: 'completed', progress: emptyProgress() });
      await s.tick();
      jobs = await jobsOf(itemId);
      assert.deepEqual(
        jobs.map((j) => j.state),
        ['completed', 'queued', 'skipped'],
      );
      assert.equal(jobs[1]!.scheduledFor, Date.parse('2026-11-25T14:20:00Z'));
    });

    test('cancel-running: a scheduled run replaces the running scheduled one, never an on-demand one', async () => {
      const { itemId } = await scheduled('cancel-running');
      const s = new Scheduler(store, clock);
      clock.set('2026-11-25T15:00:30Z');
      await s.tick();
      clock.set('2026-11-25T15:10:00Z');
      await s.tick();
      const claimed = await claimFor(itemId);
      clock.set('2026-11-25T15:20:00Z');
      await s.tick();
      let jobs = await jobsOf(itemId);
      assert.deepEqual(
        jobs.map((j) => j.state),
        ['cancelling', 'deferred'],
      );
      // The worker acknowledges the cancel; the waiting run then starts.
      const ack = await store.finish(claimed.lease, { state: 'completed', progress: emptyProgress() });
      assert.equal(ack.state, 'cancelled');
      await s.tick();
      jobs = await jobsOf(itemId);
      assert.deepEqual(
        jobs.map((j) => j.state),
        ['cancelled', 'queued'],
      );
      // An on-demand backup is never cancelled by a schedule.
      const queued = jobs[1]!;
      await store.requestCancel(queued.id);
      const onDemand = await store.admit({
        operation: 'backup',
        itemId,
        vaultId: queued.vaultId,
        trigger: 'on-demand',
        claimBy: { owner: 'w', leaseMs: 60 * MINUTE },
      });
      clock.set('2026-11-25T15:30:00Z');
      await s.tick();
      jobs = await jobsOf(itemId);
      assert.equal((await store.getJob(onDemand.job.id)).state, 'in_progress');
      assert.equal(jobs[jobs.length - 1]!.state, 'skipped');
      assert.match(jobs[jobs.length - 1]!.errorMessage ?? '', /never cancels an on-demand run/);
    });

    test('cancel-running: a newer due run replaces one still waiting for the cancelled run to stop', async () => {
      const { itemId } = await scheduled('cancel-running');
      const s = new Scheduler(store, clock);
      clock.set('2026-11-25T18:00:30Z');
      await s.tick();
      clock.set('2026-11-25T18:10:00Z');
      await s.tick();
      const claimed = await claimFor(itemId);
      clock.set('2026-11-25T18:20:00Z');
      await s.tick(); // the 18:10 run is cancelling; the 18:20 run waits
      clock.set('2026-11-25T18:30:00Z');
      await s.tick(); // the worker has not acknowledged yet: 18:30 replaces the waiting 18:20 run
      const jobs = await jobsOf(itemId);
      assert.deepEqual(
        jobs.map((j) => [new Date(j.scheduledFor!).toISOString().slice(11, 16), j.state]),
        [
          ['18:10', 'cancelling'],
          ['18:20', 'cancelled'],
          ['18:30', 'deferred'],
        ],
      );
      assert.equal(jobs[1]!.errorCode, 'JobCancelled');
      assert.match(jobs[1]!.errorMessage ?? '', /replaced by the run due 2026-11-25T18:30:00.000Z/);
      assert.equal(jobs.filter((j) => j.state === 'skipped').length, 0);
      await store.finish(claimed.lease, { state: 'completed', progress: emptyProgress() });
      await s.tick();
      assert.equal((await jobsOf(itemId))[2]!.state, 'queued');
    });

    test('downtime: one catch-up run for the latest due time inside the window; older runs recorded once as missed', async () => {
      const { itemId } = await scheduled('skip', '*/10 * * * *', 30 * MINUTE);
      const s = new Scheduler(store, clock);
      clock.set('2026-11-25T16:00:30Z');
      await s.tick(); // next due 16:10
      clock.set('2026-11-25T17:05:00Z'); // down from 16:05 to 17:05: 16:10..17:00 passed
      await s.tick();
      await s.tick();
      const jobs = await jobsOf(itemId);
      assert.deepEqual(
        jobs.map((j) => [j.state, j.errorCode]),
        [
          ['skipped', 'ScheduledRunMissed'],
          ['queued', null],
        ],
      );
      assert.match(
        jobs[0]!.errorMessage ?? '',
        /5 runs due 2026-11-25T16:10:00\.000Z to 2026-11-25T16:50:00\.000Z/,
      );
      assert.equal(jobs[1]!.scheduledFor, Date.parse('2026-11-25T17:00:00Z'));
    });

    test('downtime beyond the window: nothing is replayed, the gap is recorded once', async () => {
      const { itemId } = await scheduled('skip', '0 * * * *', 30 * MINUTE);
      const s = new Scheduler(store, clock);
      clock.set('2026-11-25T18:00:30Z');
      await s.tick(); // next due 19:00
      clock.set('2026-11-25T21:45:00Z'); // 19:00, 20:00, 21:00 passed; 21:00 is 45 min ago
      await s.tick();
      const jobs = await jobsOf(itemId);
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0]!.state, 'skipped');
      assert.equal(jobs[0]!.errorCode, 'ScheduledRunMissed');
      assert.match(jobs[0]!.errorMessage ?? '', /3 runs/);
      clock.set('2026-11-25T22:00:00Z');
      await s.tick();
      assert.equal((await jobsOf(itemId)).length, 2, 'the schedule continues normally');
    });

    test('a paused policy fires nothing; time zones and DST are the cron library’s', async () => {
      const { itemId, policy } = await scheduled('skip');
      await store.updatePolicy(policy.id, { ...policy, paused: true });
      const s = new Scheduler(store, clock);
      clock.set('2026-11-25T23:00:30Z');
      await s.tick();
      clock.set('2026-11-25T23:30:00Z');
      await s.tick();
      assert.equal((await jobsOf(itemId)).length, 0);
    });
  });
}
