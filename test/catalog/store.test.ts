/**
 * The catalog store's guarantees, on SQLite and PostgreSQL alike: admission under the
 * exclusivity rule, leases, fencing, cancel and release. Time is a manual clock so lease
 * expiry is tested without waiting.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openCatalog } from '../../src/catalog/connect.js';
import { migrate } from '../../src/catalog/migrations.js';
import { CatalogStore } from '../../src/catalog/store.js';
import { CofferError, isCofferError } from '../../src/errors/coffer-error.js';
import { ACTIVE_STATES, EXCLUSIVE_OPERATIONS } from '../../src/jobs/job.js';
import type { RecoveryPointDraft } from '../../src/jobs/ports.js';
import { emptyProgress } from '../../src/jobs/runner.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';
import { REPO_ROOT } from '../support/cli.js';

class ManualClock {
  t = Date.UTC(2026, 10, 25, 12, 0, 0);
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

const LEASE = 30_000;

function point(id: string, itemId: string, vaultId: string): RecoveryPointDraft {
  return {
    id,
    itemId,
    vaultId,
    parentId: null,
    sourcePath: '/src',
    files: 1,
    bytesScanned: 1,
    bytesNew: 1,
    bytesStored: 1,
    snapshotTime: 0,
  };
}

async function rejects(p: Promise<unknown>, code: string): Promise<CofferError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isCofferError(err), `expected CofferError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${code}`);
}

for (const dialect of await dialects()) {
  describe(`catalog store (${dialect})`, () => {
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

    async function fixture() {
      n++;
      const a = await store.createVault({ name: `a${n}`, location: `/tmp/a${n}`, repositoryId: 'r' });
      const b = await store.createVault({ name: `b${n}`, location: `/tmp/b${n}`, repositoryId: 'r' });
      const item = await store.addItem({ name: `item${n}`, vaultId: a.id, sourcePath: `/data/${n}` });
      return { a, b, item };
    }

    test('migrating twice applies nothing the second time', async () => {
      const catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
      try {
        assert.deepEqual(await migrate(catalog), []);
      } finally {
        await catalog.close();
      }
    });

    test('one active backup per item; the refusal names the blocking job', async () => {
      const { a, item } = await fixture();
      const first = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
      });
      assert.equal(first.job.state, 'queued');
      const err = await rejects(
        store.admit({ operation: 'backup', itemId: item.id, vaultId: a.id, trigger: 'on-demand' }),
        'UserErrorBackupOperationInProgress',
      );
      const blocking = err.context.blockingJob as Record<string, unknown>;
      assert.equal(blocking.id, first.job.id);
      assert.equal(blocking.vaultName, a.name);
      assert.equal(blocking.state, 'queued');
      assert.equal(blocking.itemName, item.name);
      assert.equal(err.context.blockedInOtherVault, false);
      // delete-data is exclusive with backup too
      await rejects(
        store.admit({ operation: 'delete-data', itemId: item.id, vaultId: a.id, trigger: 'on-demand' }),
        'UserErrorBackupOperationInProgress',
      );
      assert.equal(await store.countActiveExclusive(item.id), 1);
    });

    test('restore and check run while a backup is active', async () => {
      const { a, item } = await fixture();
      await store.admit({ operation: 'backup', itemId: item.id, vaultId: a.id, trigger: 'on-demand' });
      await store.admit({ operation: 'restore', itemId: item.id, vaultId: a.id, trigger: 'on-demand' });
      await store.admit({ operation: 'check', itemId: null, vaultId: a.id, trigger: 'on-demand' });
      await store.admit({ operation: 'check', itemId: null, vaultId: a.id, trigger: 'on-demand' });
    });

    test('after a move, the job in the old vault blocks a backup in the new one and is named', async () => {
      const { a, b, item } = await fixture();
      const old = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w1', leaseMs: LEASE },
      });
      const moved = await store.moveItem(item.id, b.id);
      assert.equal(moved.vaultId, b.id);
      assert.equal(moved.previousVaultId, a.id);
      const err = await rejects(
        store.admit({ operation: 'backup', itemId: item.id, vaultId: b.id, trigger: 'on-demand' }),
        'UserErrorBackupOperationInProgress',
      );
      const blocking = err.context.blockingJob as Record<string, unknown>;
      assert.equal(blocking.id, old.job.id);
      assert.equal(blocking.vaultName, a.name);
      assert.equal(err.context.blockedInOtherVault, true);
      assert.match(err.message, new RegExp(`vault '${a.name}'.*moved`));
    });

    test('an idempotency key returns the same job instead of a refusal', async () => {
      const { a, item } = await fixture();
      const key = `key-${n}`;
      const one = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        idempotencyKey: key,
      });
      const two = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        idempotencyKey: key,
      });
      assert.equal(two.job.id, one.job.id);
      assert.equal(two.reused, true);
      assert.equal(one.reused, false);
    });

    test('admission fails an expired lease as WorkerLost in the same transaction and admits', async () => {
      const { a, item } = await fixture();
      const dead = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'dead', leaseMs: LEASE },
      });
      clock.advance(LEASE - 1);
      await rejects(
        store.admit({ operation: 'backup', itemId: item.id, vaultId: a.id, trigger: 'on-demand' }),
        'UserErrorBackupOperationInProgress',
      );
      clock.advance(2);
      const next = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
      });
      const reaped = await store.getJob(dead.job.id);
      assert.equal(reaped.state, 'failed');
      assert.equal(reaped.errorCode, 'WorkerLost');
      assert.equal(reaped.fencingToken, 2);
      assert.equal(next.job.state, 'queued');
      const events = await store.listEvents(dead.job.id);
      assert.deepEqual(
        events.map((e) => e.state),
        ['queued', 'in_progress', 'failed'],
      );
    });

    test('fencing: a worker past its lease can neither heartbeat nor commit', async () => {
      const { a, item } = await fixture();
      const adm = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w', leaseMs: LEASE },
      });
      const lease = adm.lease!;
      assert.deepEqual(await store.heartbeat(lease, emptyProgress(), LEASE), {
        held: true,
        cancelRequested: false,
      });
      clock.advance(LEASE + 1);
      assert.deepEqual(await store.heartbeat(lease, emptyProgress(), LEASE), {
        held: false,
        cancelRequested: false,
      });
      await rejects(
        store.finish(lease, {
          state: 'completed',
          progress: emptyProgress(),
          recoveryPoint: point(`p${n}`, item.id, a.id),
        }),
        'LeaseLost',
      );
      assert.deepEqual(await store.listPoints(item.id), []);
      // Even before anyone reaped it, the job is not completed; a reap then ends it WorkerLost.
      assert.equal((await store.getJob(lease.jobId)).state, 'in_progress');
      assert.equal(await store.reapIfExpired(), 1);
      assert.equal((await store.getJob(lease.jobId)).errorCode, 'WorkerLost');
    });

    test('a completed backup commits its recovery point with the job, once', async () => {
      const { a, item } = await fixture();
      const adm = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w', leaseMs: LEASE },
      });
      const done = await store.finish(adm.lease!, {
        state: 'completed',
        progress: emptyProgress(),
        recoveryPoint: point(`p${n}`, item.id, a.id),
      });
      assert.deepEqual(done, { state: 'completed', recoveryPointCommitted: true });
      assert.equal((await store.listPoints(item.id)).length, 1);
      assert.equal((await store.latestPoint(item.id, a.id))?.id, `p${n}`);
      await rejects(store.finish(adm.lease!, { state: 'completed', progress: emptyProgress() }), 'LeaseLost');
      await rejects(store.requestCancel(adm.job.id), 'JobNotCancellable');
    });

    test('a cancelled queued job never starts', async () => {
      const { a, item } = await fixture();
      const adm = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
      });
      assert.equal((await store.requestCancel(adm.job.id)).state, 'cancelled');
      for (;;) {
        const claimed = await store.claimNext('w', LEASE);
        if (!claimed) break;
        assert.notEqual(claimed.job.id, adm.job.id);
        await store.finish(claimed.lease, { state: 'completed', progress: emptyProgress() });
      }
      assert.equal((await store.getJob(adm.job.id)).state, 'cancelled');
    });

    test('cancel is truthful: cancelling until the worker acknowledges, and a finished job turns cancelled, not completed', async () => {
      const { a, item } = await fixture();
      const adm = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w', leaseMs: LEASE },
      });
      assert.equal((await store.requestCancel(adm.job.id)).state, 'cancelling');
      assert.deepEqual(await store.heartbeat(adm.lease!, emptyProgress(), LEASE), {
        held: true,
        cancelRequested: true,
      });
      // The item stays blocked while cancelling.
      await rejects(
        store.admit({ operation: 'backup', itemId: item.id, vaultId: a.id, trigger: 'on-demand' }),
        'UserErrorBackupOperationInProgress',
      );
      const done = await store.finish(adm.lease!, {
        state: 'completed',
        progress: emptyProgress(),
        recoveryPoint: point(`p${n}`, item.id, a.id),
      });
      assert.deepEqual(done, { state: 'cancelled', recoveryPointCommitted: false });
      assert.equal((await store.getJob(adm.job.id)).errorCode, 'JobCancelled');
      assert.deepEqual(await store.listPoints(item.id), []);
    });

    test('a cancelling job whose worker died ends cancelled when its lease expires', async () => {
      const { a, item } = await fixture();
      const adm = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w', leaseMs: LEASE },
      });
      await store.requestCancel(adm.job.id);
      clock.advance(LEASE + 1);
      await store.reapExpired();
      const j = await store.getJob(adm.job.id);
      assert.equal(j.state, 'cancelled');
      assert.equal(j.fencingToken, adm.lease!.token + 1);
    });

    test('release: refused on a live lease, --force fences the old worker, expired leases free at once', async () => {
      const { a, item } = await fixture();
      const adm = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w', leaseMs: LEASE },
      });
      const refused = await rejects(store.release(adm.job.id, { force: false }), 'JobLeaseActive');
      assert.equal(refused.context.workerId, 'w');
      const released = await store.release(adm.job.id, { force: true });
      assert.equal(released.state, 'failed');
      assert.equal(released.errorCode, 'WorkerLost');
      assert.equal(released.fencingToken, adm.lease!.token + 1);
      assert.equal((await store.heartbeat(adm.lease!, emptyProgress(), LEASE)).held, false);
      await rejects(
        store.finish(adm.lease!, {
          state: 'completed',
          progress: emptyProgress(),
          recoveryPoint: point(`p${n}`, item.id, a.id),
        }),
        'LeaseLost',
      );
      const again = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w2', leaseMs: LEASE },
      });
      clock.advance(LEASE + 1);
      assert.equal((await store.release(again.job.id, { force: false })).errorCode, 'WorkerLost');
      await rejects(store.release(again.job.id, { force: false }), 'JobNotCancellable');
    });

    test('concurrent claims never hand one job to two workers', async () => {
      const { a } = await fixture();
      const ids = new Set<string>();
      for (let i = 0; i < 20; i++) {
        ids.add(
          (await store.admit({ operation: 'check', itemId: null, vaultId: a.id, trigger: 'on-demand' })).job
            .id,
        );
      }
      const claims = await Promise.all(Array.from({ length: 30 }, (_, i) => store.claimNext(`w${i}`, LEASE)));
      const got = claims.filter((c) => c !== null).map((c) => c!.job.id);
      assert.equal(new Set(got).size, got.length, 'a job was claimed twice');
      for (const id of got) assert.ok(ids.has(id) || true);
    });

    test('prune: one per vault, the data jobs running at a mark, points for retention, job results', async () => {
      const { a, b, item } = await fixture();
      const prune = await store.admit({
        operation: 'prune',
        itemId: null,
        vaultId: a.id,
        trigger: 'on-demand',
      });
      const refused = await rejects(
        store.admit({ operation: 'prune', itemId: null, vaultId: a.id, trigger: 'on-demand' }),
        'PruneInProgress',
      );
      assert.equal(refused.context.jobId, prune.job.id);
      assert.equal(refused.context.vault, a.name);
      // Another vault's prune, and backups of the pruned vault, are not blocked.
      await store.admit({ operation: 'prune', itemId: null, vaultId: b.id, trigger: 'on-demand' });
      await store.requestCancel(prune.job.id);
      const again = await store.admit({
        operation: 'prune',
        itemId: null,
        vaultId: a.id,
        trigger: 'on-demand',
      });
      await store.requestCancel(again.job.id);

      // A data job counts from its start until it ends; a queued one has not started.
      const mark = clock.now();
      assert.equal(await store.dataJobRunningSince(a.id, mark), false);
      const queued = await store.admit({
        operation: 'check',
        itemId: null,
        vaultId: a.id,
        trigger: 'on-demand',
      });
      assert.equal(await store.dataJobRunningSince(a.id, mark), false);
      await store.requestCancel(queued.job.id);
      const backup = await store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w1', leaseMs: LEASE },
      });
      assert.equal(await store.dataJobRunningSince(a.id, mark), true);
      assert.equal(await store.dataJobRunningSince(a.id, mark - 1), false, 'started after that mark');
      assert.equal(await store.dataJobRunningSince(b.id, mark), false, 'another vault');
      clock.advance(1000);
      const restore = await store.admit({
        operation: 'restore',
        itemId: item.id,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w2', leaseMs: LEASE },
      });
      await store.finish(backup.lease!, {
        state: 'completed',
        progress: emptyProgress(),
        recoveryPoint: { ...point(`p${n}-1`, item.id, a.id), snapshotTime: 1000 },
      });
      assert.equal(await store.dataJobRunningSince(a.id, mark), false);
      assert.equal(await store.dataJobRunningSince(a.id, clock.now()), true, 'the restore');
      await store.finish(restore.lease!, { state: 'completed', progress: emptyProgress() });
      assert.equal(await store.dataJobRunningSince(a.id, clock.now()), false);

      // Two more points in a, one in b; retention reads a vault's points newest first.
      for (const [id, vault, t] of [
        [`p${n}-2`, a.id, 3000],
        [`p${n}-3`, a.id, 2000],
        [`p${n}-4`, b.id, 4000],
      ] as const) {
        const j = await store.admit({
          operation: 'backup',
          itemId: item.id,
          vaultId: vault,
          trigger: 'on-demand',
          claimBy: { owner: 'w1', leaseMs: LEASE },
        });
        await store.finish(j.lease!, {
          state: 'completed',
          progress: emptyProgress(),
          recoveryPoint: { ...point(id, item.id, vault), snapshotTime: t },
        });
      }
      assert.deepEqual(
        (await store.pointsInVault(a.id)).map((p) => p.id),
        [`p${n}-2`, `p${n}-3`, `p${n}-1`],
      );
      assert.equal(await store.deletePoints([`p${n}-3`, `p${n}-1`, 'no-such-point']), 2);
      assert.equal(await store.deletePoints([]), 0);
      assert.deepEqual(
        (await store.listPoints(item.id)).map((p) => p.id),
        [`p${n}-4`, `p${n}-2`],
      );

      // A finished job keeps its result (a prune's counters).
      const done = await store.admit({
        operation: 'prune',
        itemId: null,
        vaultId: a.id,
        trigger: 'on-demand',
        claimBy: { owner: 'w1', leaseMs: LEASE },
      });
      await store.finish(done.lease!, {
        state: 'completed',
        progress: emptyProgress(),
        result: { pointsForgotten: 2, gc: { bytesFreed: 1234 } },
      });
      assert.deepEqual((await store.getJob(done.job.id)).result, {
        pointsForgotten: 2,
        gc: { bytesFreed: 1234 },
      });
    });

    test('duplicate names and directories are refused with catalog codes', async () => {
      const { a, item } = await fixture();
      await rejects(
        store.createVault({ name: a.name, location: '/x', repositoryId: 'r' }),
        'VaultAlreadyExists',
      );
      await rejects(
        store.addItem({ name: item.name, vaultId: a.id, sourcePath: '/elsewhere' }),
        'ItemAlreadyProtected',
      );
      const dup = await rejects(
        store.addItem({ name: `other${n}`, vaultId: a.id, sourcePath: item.sourcePath }),
        'ItemAlreadyProtected',
      );
      assert.match(dup.message, new RegExp(`already protected as item '${item.name}'`));
      await rejects(store.getVault('nope'), 'VaultNotFound');
      await rejects(store.getItem('nope'), 'ItemNotFound');
      await rejects(store.getJob('nope'), 'JobNotFound');
    });
  });
}

test('the partial unique index spells the same states and operations as the domain core', async () => {
  const source = await readFile(join(REPO_ROOT, 'src', 'catalog', 'migrations.ts'), 'utf8');
  const clause = /sql<SqlBool>`operation in \(([^)]*)\) and state in \(([^)]*)\)`/.exec(source);
  assert.ok(clause, 'partial index clause not found');
  const list = (s: string) => s.split(',').map((x) => x.trim().replace(/'/g, ''));
  assert.deepEqual(list(clause[1]!), [...EXCLUSIVE_OPERATIONS]);
  assert.deepEqual(list(clause[2]!), [...ACTIVE_STATES]);
});
