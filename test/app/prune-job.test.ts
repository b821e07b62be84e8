/**
 * The prune job through the application layer, on SQLite and PostgreSQL: real vaults, real
 * backups, the job runner with its heartbeats. Items without a policy (or without rules) keep
 * everything; an item moved away is still pruned in its old vault; a cancelled prune ends
 * `cancelled`, leaves a vault that checks clean, and the next prune completes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/app/config.js';
import { openApp, type AppContext } from '../../src/app/context.js';
import { executorFor } from '../../src/app/executors.js';
import { createPolicy, DEFAULT_CATCH_UP_MS, setItemPolicy } from '../../src/app/policies.js';
import { pruneAfterScheduledBackup, type PruneJobResult } from '../../src/app/prune.js';
import { triggerBackup, triggerPrune, triggerRestore } from '../../src/app/triggers.js';
import { addItem, createVault, moveItem, openVaultRepository } from '../../src/app/vaults.js';
import type { Admission } from '../../src/jobs/ports.js';
import { runJob, type RunOutcome } from '../../src/jobs/runner.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';

for (const dialect of await dialects()) {
  describe(`prune job (${dialect})`, () => {
    let tc: TestCatalog;
    let app: AppContext;
    let root: string;

    before(async () => {
      tc = await createTestCatalog(dialect);
      root = await mkdtemp(join(tmpdir(), 'coffer-prune-job-'));
      app = await openApp(loadConfig({ ...tc.env, COFFER_PASSWORD: 'prune job password' }));
      for (const [name, retention] of [
        ['keep-one', { last: 1 }],
        ['no-rules', {}],
      ] as const) {
        await createPolicy(
          app,
          {
            name,
            schedule: '0 3 * * *',
            timezone: 'UTC',
            jitterSeconds: 0,
            retention,
            overlap: 'skip',
            catchUpMs: DEFAULT_CATCH_UP_MS,
            paused: true,
            limitReadBytesPerSec: null,
          },
          'test',
        );
      }
    });
    after(async () => {
      await app.close();
      await tc.cleanup();
      await rm(root, { recursive: true, force: true });
    });

    function run(a: Admission, opts: { heartbeatMs?: number; onProgress?: () => void } = {}) {
      return runJob(a.job, a.lease!, executorFor(app), {
        store: app.store,
        clock: app.clock,
        leaseMs: app.config.leaseMs,
        heartbeatMs: opts.heartbeatMs,
        onProgress: opts.onProgress,
      });
    }

    async function item(name: string, vault: string, policy: string | null) {
      const src = join(root, 'src', name);
      await mkdir(src, { recursive: true });
      const it = await addItem(app, { name, vaultRef: vault, path: src }, 'test');
      if (policy) await setItemPolicy(app, it.id, policy, 'test');
      return { ...it, src };
    }

    async function backups(it: { id: string; src: string }, count: number, bytes = 200 * 1024) {
      for (let i = 0; i < count; i++) {
        await writeFile(join(it.src, 'data.bin'), randomBytes(bytes));
        const out = await run(await triggerBackup(app, it.id, { requestedBy: 'test', claim: true }));
        assert.equal(out.state, 'completed', out.errorMessage ?? '');
      }
    }

    async function prune(
      vault: string,
      dryRun = false,
    ): Promise<{ out: RunOutcome; result: PruneJobResult }> {
      const out = await run(await triggerPrune(app, vault, { requestedBy: 'test', claim: true, dryRun }));
      assert.equal(out.state, 'completed', out.errorMessage ?? '');
      return { out, result: (await app.store.getJob(out.jobId)).result as unknown as PruneJobResult };
    }

    test('only items with retention rules lose points; a moved item is pruned in its old vault', async () => {
      await createVault(app, 'main', join(root, 'main'), 'test');
      await createVault(app, 'next', join(root, 'next'), 'test');
      const kept = await item('no-policy', 'main', null);
      const empty = await item('empty-policy', 'main', 'no-rules');
      const rotating = await item('rotating', 'main', 'keep-one');
      for (const it of [kept, empty, rotating]) await backups(it, 3);
      await moveItem(app, rotating.id, 'next', 'test');
      await backups(rotating, 2);

      const dry = await prune('main', true);
      assert.equal(dry.result.pointsForgotten, 2);
      assert.equal((await app.store.pointsInVault((await app.store.getVault('main')).id)).length, 9);

      const { out, result } = await prune('main');
      assert.equal(result.dryRun, false);
      // /metrics counts the bytes a prune freed (and nothing for a dry run).
      const metrics = new Metrics(app.store);
      for (const id of [dry.out.jobId, out.jobId]) {
        const ended = await app.store.getJob(id);
        metrics.jobEnded(ended, id === out.jobId ? out : dry.out, ended);
      }
      assert.match(
        await metrics.registry.getSingleMetricAsString('coffer_bytes_processed_total'),
        new RegExp(
          `coffer_bytes_processed_total\\{operation="prune",kind="freed"\\} ${result.gc.bytesFreed}$`,
          'm',
        ),
      );
      assert.equal(result.pointsForgotten, 2);
      assert.equal(result.pointsKept, 7);
      assert.deepEqual(
        result.items.map((i) => [i.item, i.policy, i.rules, i.kept, i.forgotten]),
        [
          ['empty-policy', 'no-rules', null, 3, 0],
          ['no-policy', null, null, 3, 0],
          ['rotating', 'keep-one', 'last 1', 1, 2],
        ],
      );
      assert.ok(result.gc.bytesFreed >= 2 * 200 * 1024, JSON.stringify(result.gc));
      // The dry run predicted it.
      assert.deepEqual(
        [dry.result.gc.dryRun, dry.result.gc.packsDeleted, dry.result.gc.bytesFreed],
        [true, result.gc.packsDeleted, result.gc.bytesFreed],
      );
      // The vault "next" was not touched: both of the moved item's new points are there.
      assert.equal(
        (await app.store.listPoints(rotating.id, (await app.store.getVault('next')).id)).length,
        2,
      );
      const repo = await openVaultRepository(app, await app.store.getVault('main'));
      assert.equal((await repo.listSnapshots()).length, 7);
      const check = await repo.check({ readData: true });
      assert.equal(check.ok, true, JSON.stringify(check.issues));
    });

    test('a scheduled backup under retention rules queues a prune of its vault, at most once per interval', async () => {
      await createVault(app, 'auto', join(root, 'auto'), 'test');
      const ruled = await item('auto-ruled', 'auto', 'keep-one');
      const free = await item('auto-free', 'auto', 'no-rules');
      const vault = await app.store.getVault('auto');
      const scheduled = async (it: { id: string; src: string }) => {
        await writeFile(join(it.src, 'data.bin'), randomBytes(64 * 1024));
        const a = await app.store.admit({
          operation: 'backup',
          itemId: it.id,
          vaultId: vault.id,
          trigger: 'schedule',
          claimBy: { owner: app.workerId, leaseMs: app.config.leaseMs },
        });
        assert.equal((await run(a)).state, 'completed');
        return a.job;
      };
      const hour = 3600_000;
      // Rules off, or an on-demand backup: nothing is queued.
      assert.equal(await pruneAfterScheduledBackup(app, await scheduled(free), hour), null);
      await backups(ruled, 1);
      const onDemand = (await app.store.listJobs({ itemId: ruled.id, limit: 1 }))[0]!;
      assert.equal(await pruneAfterScheduledBackup(app, onDemand, hour), null);

      const first = await pruneAfterScheduledBackup(app, await scheduled(ruled), hour);
      assert.ok(first);
      assert.equal(first.operation, 'prune');
      assert.equal(first.trigger, 'schedule');
      assert.equal(first.state, 'queued');
      assert.match(first.requestedBy ?? '', /after backup .* of 'auto-ruled' \(policy keep-one\)/);
      // Queued or run within the interval: no second one.
      assert.equal(await pruneAfterScheduledBackup(app, await scheduled(ruled), hour), null);
      const claimed = await app.store.claimNext(app.workerId, app.config.leaseMs);
      assert.equal(claimed?.job.id, first.id);
      const out = await runJob(claimed.job, claimed.lease, executorFor(app), {
        store: app.store,
        clock: app.clock,
        leaseMs: app.config.leaseMs,
      });
      assert.equal(out.state, 'completed');
      assert.equal((await app.store.listPoints(ruled.id)).length, 1);
      assert.equal(await pruneAfterScheduledBackup(app, await scheduled(ruled), hour), null);
      // With a zero interval the next scheduled backup queues another prune.
      const second = await pruneAfterScheduledBackup(app, await scheduled(ruled), 0);
      assert.ok(second && second.id !== first.id);
      await app.store.requestCancel(second.id);
    });

    test('a point an active restore reads is kept until a later prune', async () => {
      await createVault(app, 'held', join(root, 'held'), 'test');
      const it = await item('held-item', 'held', 'keep-one');
      await backups(it, 3);
      const oldest = (await app.store.listPoints(it.id)).at(-1)!;
      const restore = await triggerRestore(app, it.id, {
        requestedBy: 'test',
        target: join(root, 'held-restore'),
        point: oldest.id,
      });
      const first = await prune('held');
      assert.equal(first.result.pointsForgotten, 1);
      assert.equal(first.result.pointsHeldForRestores, 1);
      assert.deepEqual(
        first.result.items.map((i) => [i.kept, i.forgotten]),
        [[2, 1]],
      );
      assert.ok((await app.store.listPoints(it.id)).some((p) => p.id === oldest.id));
      const repo = await openVaultRepository(app, await app.store.getVault('held'));
      assert.equal((await repo.loadSnapshot(oldest.id)).id, oldest.id);
      await app.store.requestCancel(restore.job.id);
      const second = await prune('held');
      assert.equal(second.result.pointsForgotten, 1);
      assert.equal(second.result.pointsHeldForRestores, 0);
      assert.deepEqual(
        (await app.store.listPoints(it.id)).map((p) => p.id),
        [(await app.store.latestPoint(it.id, restore.job.vaultId))!.id],
      );
    });

    test('a cancelled prune ends cancelled, the vault checks clean, and the next prune completes', async () => {
      await createVault(app, 'busy', join(root, 'busy'), 'test');
      const it = await item('busy-item', 'busy', 'keep-one');
      await backups(it, 6, 1024 * 1024);
      const a = await triggerPrune(app, 'busy', { requestedBy: 'test', claim: true, dryRun: false });
      let requested = 0;
      const out = await run(a, {
        heartbeatMs: 10,
        onProgress: () => {
          if (requested++ === 0) void app.store.requestCancel(a.job.id);
        },
      });
      assert.equal(out.state, 'cancelled');
      const job = await app.store.getJob(a.job.id);
      assert.equal(job.state, 'cancelled');
      const repo = await openVaultRepository(app, await app.store.getVault('busy'));
      const mid = await repo.check({ readData: true });
      assert.equal(mid.ok, true, JSON.stringify(mid.issues));
      // Every point the catalog still lists has its snapshot: forgetting never splits the two.
      const snaps = new Set((await repo.listSnapshots()).map((s) => s.id));
      for (const p of await app.store.listPoints(it.id)) assert.ok(snaps.has(p.id), `snapshot of ${p.id}`);

      const { result } = await prune('busy');
      assert.equal((await app.store.listPoints(it.id)).length, 1);
      assert.equal(result.gc.condemnedListsWaiting, 0);
      const end = await repo.check({ readData: true });
      assert.equal(end.ok, true, JSON.stringify(end.issues));
      assert.equal((await repo.listSnapshots()).length, 1);
    });
  });
}
