/**
 * The worker registry and job notices in the catalog, on SQLite and PostgreSQL: a worker is
 * live while it heartbeats, lost after three missed beats, forgotten after a day, and listed
 * with the jobs its slots hold; on PostgreSQL, an admission and a cancel reach another
 * connection's subscriber as notices, after commit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openCatalog, type Catalog } from '../../src/catalog/connect.js';
import { migrate } from '../../src/catalog/migrations.js';
import type { CatalogNotice } from '../../src/catalog/notify.js';
import { CatalogStore, WORKER_FORGET_MS, type WorkerBeat } from '../../src/catalog/store.js';
import { systemClock } from '../../src/jobs/clock.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';
import { waitFor } from '../support/cli.js';

class ManualClock {
  t = Date.UTC(2026, 10, 25, 12, 0, 0);
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

function beat(id: string, concurrency = 1): WorkerBeat {
  const [host, pid] = id.split(':');
  return {
    id,
    host: host!,
    pid: Number(pid),
    kind: 'worker',
    version: '0.1.0',
    concurrency,
    startedAt: Date.UTC(2026, 10, 25, 12, 0, 0),
    heartbeatMs: 1000,
  };
}

for (const dialect of await dialects()) {
  describe(`worker registry and notices (${dialect})`, () => {
    let tc: TestCatalog;
    let catalog: Catalog;
    let store: CatalogStore;
    const clock = new ManualClock();

    before(async () => {
      tc = await createTestCatalog(dialect);
      catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
      await migrate(catalog);
      store = new CatalogStore(catalog, clock);
    });
    after(async () => {
      await catalog.close();
      await tc.cleanup();
    });

    test('live while heartbeating, lost after three missed beats, forgotten after a day; jobs by slot', async () => {
      await store.workerHeartbeat(beat('host-a:101:k1', 2));
      await store.workerHeartbeat(beat('host-b:202:k2'));
      const v = await store.createVault({ name: 'v', location: '/tmp/v', repositoryId: 'r' });
      const jobs = [];
      for (let i = 0; i < 3; i++)
        jobs.push(
          (await store.admit({ operation: 'check', itemId: null, vaultId: v.id, trigger: 'on-demand' })).job,
        );
      const c1 = await store.claimNext('host-a:101:k1#0', 60_000);
      const c2 = await store.claimNext('host-a:101:k1#1', 60_000);
      const c3 = await store.claimNext('host-b:202:k2', 60_000);
      // A lease owner whose prefix is a different worker id is not attributed to host-a.
      await store.workerHeartbeat(beat('host-a:101:k10'));

      const live = await store.listWorkers({ includeLost: false });
      const byId = new Map(live.map((w) => [w.id, w]));
      assert.deepEqual(
        byId
          .get('host-a:101:k1')
          ?.jobs.map((j) => j.id)
          .sort(),
        [c1!.job.id, c2!.job.id].sort(),
      );
      assert.deepEqual(
        byId.get('host-b:202:k2')?.jobs.map((j) => j.id),
        [c3!.job.id],
      );
      assert.deepEqual(byId.get('host-a:101:k10')?.jobs, []);
      assert.ok(live.every((w) => w.state === 'live'));
      assert.equal(byId.get('host-a:101:k1')?.concurrency, 2);

      // host-b keeps beating; host-a stops. Three missed beats of 1 s: lost.
      clock.advance(2000);
      await store.workerHeartbeat(beat('host-b:202:k2'));
      await store.workerHeartbeat(beat('host-a:101:k10'));
      assert.equal(
        (await store.listWorkers({ includeLost: false })).length,
        3,
        'two missed beats: still live',
      );
      clock.advance(1500);
      await store.workerHeartbeat(beat('host-b:202:k2'));
      await store.workerHeartbeat(beat('host-a:101:k10'));
      const now = await store.listWorkers({ includeLost: false });
      assert.deepEqual(now.map((w) => w.id).sort(), ['host-a:101:k10', 'host-b:202:k2']);
      const all = await store.listWorkers({ includeLost: true });
      assert.equal(all.find((w) => w.id === 'host-a:101:k1')?.state, 'lost');

      // A lost worker that beats again is live again (e.g. after a partition).
      await store.workerHeartbeat(beat('host-a:101:k1', 2));
      assert.equal((await store.listWorkers({ includeLost: false })).length, 3);

      // Deregistration removes at once; a day of silence forgets.
      await store.deregisterWorker('host-a:101:k10');
      clock.advance(WORKER_FORGET_MS + 1);
      await store.workerHeartbeat(beat('host-b:202:k2'));
      const left = await store.listWorkers({ includeLost: true });
      assert.deepEqual(
        left.map((w) => w.id),
        ['host-b:202:k2'],
      );
    });

    test('notices: an admission and a cancel reach another connection after commit (PostgreSQL only)', async () => {
      const listener = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
      try {
        if (dialect === 'sqlite') {
          assert.equal(listener.notices, null, 'SQLite has no notices: workers poll');
          return;
        }
        const heard: CatalogNotice[] = [];
        listener.notices!.subscribe((n) => heard.push(n));
        await waitFor('the listener to connect', async () => listener.notices!.connected, 10_000, 20);
        const live = new CatalogStore(catalog, systemClock);
        const v = await live.createVault({ name: 'notices', location: '/tmp/n', repositoryId: 'r' });
        await live.admit({ operation: 'check', itemId: null, vaultId: v.id, trigger: 'on-demand' });
        await waitFor('a queued notice', async () => heard.some((n) => n.kind === 'queued'), 5000, 10);
        const claimed = await live.claimNext('host-c:303:k3', 60_000);
        assert.ok(claimed);
        await live.requestCancel(claimed.job.id);
        await waitFor(
          'a cancel notice naming the job',
          async () => heard.some((n) => n.kind === 'cancel' && n.jobId === claimed.job.id),
          5000,
          10,
        );
      } finally {
        await listener.close();
      }
    });
  });
}
