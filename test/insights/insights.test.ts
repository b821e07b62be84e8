/**
 * Insights from real job histories (SQLite and PostgreSQL, manual clock): a deliberately slow
 * item whose backups outlast its schedule, an item blocked by its old vault, a stalled worker,
 * repeated failures and an unusually long run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openCatalog } from '../../src/catalog/connect.js';
import { migrate } from '../../src/catalog/migrations.js';
import { CatalogStore } from '../../src/catalog/store.js';
import { computeInsights, type Insight } from '../../src/insights/insights.js';
import { emptyProgress } from '../../src/jobs/runner.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';

class ManualClock {
  t = Date.UTC(2026, 10, 20, 8, 0, 0);
  now(): number {
    return this.t;
  }
}

const MIN = 60_000;
const LEASE = 30_000;

for (const dialect of await dialects()) {
  describe(`insights (${dialect})`, () => {
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

    async function fixture(schedule?: string) {
      n++;
      const vault = await store.createVault({ name: `v${n}`, location: `/tmp/v${n}`, repositoryId: 'r' });
      const policy = schedule
        ? await store.createPolicy({
            name: `p${n}`,
            schedule,
            timezone: 'UTC',
            jitterSeconds: 0,
            retention: {},
            overlap: 'skip',
            catchUpMs: 3600_000,
            paused: false,
            limitReadBytesPerSec: null,
          })
        : null;
      const item = await store.addItem({
        name: `i${n}`,
        vaultId: vault.id,
        sourcePath: `/data/${n}`,
        policyId: policy?.id ?? null,
      });
      return { vault, item };
    }

    /** A backup that runs `ms` on the manual clock and ends as asked. */
    async function backup(
      itemId: string,
      vaultId: string,
      ms: number,
      end: 'completed' | 'failed' = 'completed',
      code?: string,
    ) {
      const a = await store.admit({
        operation: 'backup',
        itemId,
        vaultId,
        trigger: 'schedule',
        claimBy: { owner: 'w', leaseMs: ms + LEASE },
      });
      clock.t += ms;
      await store.finish(a.lease!, {
        state: end,
        progress: emptyProgress(),
        errorCode: code ?? null,
        errorMessage: code ? `${code} happened` : null,
      });
      clock.t += MIN;
      return a.job.id;
    }

    async function insights(): Promise<Insight[]> {
      const data = await store.insightData(clock.t - 30 * 86_400_000);
      return computeInsights({ now: clock.t, heartbeatMs: 500, ...data });
    }

    test('a deliberately slow item whose backups outlast its 10-minute schedule is flagged before it collides', async () => {
      const { vault, item } = await fixture('*/10 * * * *');
      for (let i = 0; i < 4; i++) await backup(item.id, vault.id, 12 * MIN);
      const found = (await insights()).filter(
        (x) => x.kind === 'schedule-collision-risk' && x.items[0]?.id === item.id,
      );
      assert.equal(found.length, 1);
      const [risk] = found;
      assert.equal(risk!.severity, 'critical');
      assert.equal(risk!.evidence.intervalMs, 10 * MIN);
      assert.equal(risk!.evidence.p90DurationMs, 12 * MIN);
      assert.match(risk!.recommendation, /Space the schedule to at least 15 min/);
      assert.ok(risk!.docs.some((d) => d.href.includes('space-schedules-by-backup-duration')));
    });

    test('an item whose backups fit comfortably raises nothing', async () => {
      const { vault, item } = await fixture('0 * * * *');
      for (let i = 0; i < 4; i++) await backup(item.id, vault.id, 5 * MIN);
      assert.equal((await insights()).filter((x) => x.items.some((i) => i.id === item.id)).length, 0);
    });

    test('an item blocked by its job in the old vault after a move', async () => {
      const { vault, item } = await fixture();
      const other = await store.createVault({
        name: `other${n}`,
        location: `/tmp/other${n}`,
        repositoryId: 'r',
      });
      const job = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: vault.id,
        trigger: 'on-demand',
      });
      await store.moveItem(item.id, other.id);
      const blocked = (await insights()).find(
        (x) => x.kind === 'blocked-by-other-vault' && x.items[0]?.id === item.id,
      );
      assert.ok(blocked);
      assert.equal(blocked.evidence.jobId, job.job.id);
      assert.match(blocked.recommendation, /coffer job cancel/);
      await store.requestCancel(job.job.id);
    });

    test('a job whose heartbeat stopped, and repeated failures with the most common code', async () => {
      const { vault, item } = await fixture();
      await backup(item.id, vault.id, MIN, 'failed', 'StorageFull');
      await backup(item.id, vault.id, MIN, 'failed', 'SourceUnreadable');
      await backup(item.id, vault.id, MIN, 'failed', 'SourceUnreadable');
      const failing = (await insights()).find(
        (x) => x.kind === 'failing-repeatedly' && x.items[0]?.id === item.id,
      );
      assert.ok(failing);
      assert.equal(failing.evidence.mostCommonCode, 'SourceUnreadable');
      assert.match(failing.recommendation, /coffer explain SourceUnreadable/);

      const stalled = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: vault.id,
        trigger: 'on-demand',
        claimBy: { owner: 'paused-worker', leaseMs: LEASE },
      });
      clock.t += 10_000;
      const hb = (await insights()).find(
        (x) => x.kind === 'heartbeat-stopped' && x.evidence.jobId === stalled.job.id,
      );
      assert.ok(hb);
      assert.equal(hb.evidence.worker, 'paused-worker');
      await store.release(stalled.job.id, { force: true });
    });

    test('a backup running far longer than usual', async () => {
      const { vault, item } = await fixture();
      for (let i = 0; i < 3; i++) await backup(item.id, vault.id, MIN);
      const running = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: vault.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w', leaseMs: 5 * MIN },
      });
      // Keep it heartbeating while time passes, so only "long" (not "stalled") applies.
      for (let i = 0; i < 20; i++) {
        clock.t += MIN;
        assert.equal((await store.heartbeat(running.lease!, emptyProgress(), 5 * MIN)).held, true);
      }
      const found = await insights();
      const long = found.find((x) => x.kind === 'running-long' && x.items[0]?.id === item.id);
      assert.ok(long);
      assert.equal(long.evidence.jobId, running.job.id);
      assert.equal(
        found.filter((x) => x.kind === 'heartbeat-stopped' && x.evidence.jobId === running.job.id).length,
        0,
      );
      await store.release(running.job.id, { force: true });
    });
  });
}
