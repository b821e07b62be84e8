/**
 * The engine's prune on real repositories: it frees exactly what it reports, repacking keeps the
 * live blobs of mostly dead packs, a dry run changes nothing, packs condemned while a backup runs
 * wait for it (and are revived if it reused them), a cancelled prune leaves a clean vault, and
 * many small index files are folded into one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PruneReport, Repository } from '../../src/engine/index.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import type { Backend } from '../../src/storage/backend.js';
import { backends, createTestStorage, type TestStorage } from '../support/backends.js';
import { diffTrees, newRepository, removeDir, tempDir } from './source-tree-fixture.js';

/** Every object below `prefix` with its size, sorted: a fingerprint of a repository's storage. */
async function listing(backend: Backend, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of await backend.list(prefix)) {
    const st = await backend.stat(prefix === '' ? name : `${prefix}/${name}`);
    out.push(`${name} ${st?.size ?? 'gone'}`);
  }
  return out.sort();
}

async function bytesUnder(backend: Backend, prefix: string): Promise<number> {
  return (await listing(backend, prefix)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

const always = () => Promise.resolve(true);

for (const kind of backends()) {
  describe(`engine prune (${kind} storage)`, () => {
    let work: string;
    let storage: TestStorage;

    before(async () => {
      work = await tempDir('prune');
      storage = await createTestStorage(kind);
    });
    after(async () => {
      await storage.cleanup();
      await removeDir(work);
    });

    async function fresh(name: string): Promise<{ repo: Repository; dir: Backend; src: string }> {
      const dir = storage.open(storage.location(name));
      const src = join(work, `${name}-src`);
      await mkdir(src, { recursive: true });
      return { repo: await newRepository(dir), dir, src };
    }

    async function backup(repo: Repository, src: string, parent?: string): Promise<string> {
      const r = await repo.backup({ sourcePath: src, parentSnapshotId: parent });
      await repo.commitSnapshot(r.snapshotId);
      return r.snapshotId;
    }

    async function assertRestores(repo: Repository, id: string, expected: string): Promise<void> {
      const target = join(work, `restore-${id.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
      await repo.restore({ snapshotId: id, target });
      assert.equal(diffTrees(expected, target), '', `snapshot ${id} restores differently`);
      await rm(target, { recursive: true, force: true });
    }

    async function assertClean(repo: Repository): Promise<void> {
      const report = await repo.check({ readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.issues));
    }

    test('frees the packs of forgotten snapshots; storage shrinks by exactly the bytes reported', async () => {
      const { repo, dir, src } = await fresh('frees');
      // No file spans both snapshots, so no pack is partly used and nothing is repacked.
      await writeFile(join(src, 'old.bin'), randomBytes(3 * 1024 * 1024));
      const first = await backup(repo, src);
      await rm(join(src, 'old.bin'));
      await writeFile(join(src, 'new.bin'), randomBytes(1024 * 1024));
      const second = await backup(repo, src, first);

      // Nothing forgotten: nothing to free.
      const idle = await repo.prune({ backupsRunningAtHaveEnded: always });
      assert.equal(idle.packsDeleted, 0);
      assert.equal(idle.bytesFreed, 0);

      await repo.forgetSnapshots([first]);
      const before = await bytesUnder(dir, 'data');
      const r = await repo.prune({ backupsRunningAtHaveEnded: always });
      const afterBytes = await bytesUnder(dir, 'data');
      assert.ok(r.bytesFreed >= 3 * 1024 * 1024, JSON.stringify(r));
      assert.equal(r.packsRepacked, 0, JSON.stringify(r));
      assert.equal(before - afterBytes, r.bytesFreed);
      assert.equal(r.condemnedListsWaiting, 0);
      assert.deepEqual(await dir.list('condemned'), []);
      console.log(
        `engine prune (${kind}): ${r.packsDeleted} packs, ${r.bytesFreed} bytes freed; data/ ${before} -> ${afterBytes} bytes in ${r.durationMs} ms`,
      );
      await assertClean(repo);
      await assertRestores(repo, second, src);
    });

    test('repacks a mostly dead pack: the live blobs move to a new pack and still restore', async () => {
      const { repo, dir, src } = await fresh('repack');
      // Both files fit in one 1 MiB test pack; only the small one survives.
      await writeFile(join(src, 'small.bin'), randomBytes(120 * 1024));
      await writeFile(join(src, 'big.bin'), randomBytes(600 * 1024));
      const first = await backup(repo, src);
      await rm(join(src, 'big.bin'));
      const second = await backup(repo, src, first);
      await repo.forgetSnapshots([first]);
      const before = await bytesUnder(dir, 'data');
      const r = await repo.prune({ backupsRunningAtHaveEnded: always });
      const afterBytes = await bytesUnder(dir, 'data');
      assert.ok(r.packsRepacked >= 1, JSON.stringify(r));
      assert.ok(r.bytesRepacked >= 120 * 1024 && r.bytesRepacked < 200 * 1024, JSON.stringify(r));
      // The repacked copies were added before the old packs went.
      assert.ok(before - afterBytes < r.bytesFreed && before - afterBytes > 500 * 1024);
      await assertClean(repo);
      await assertRestores(repo, second, src);
      // A second prune finds nothing left to do.
      const again = await repo.prune({ backupsRunningAtHaveEnded: always });
      assert.equal(again.packsCondemned + again.packsDeleted + again.packsRepacked, 0, JSON.stringify(again));
    });

    test('a dry run writes and deletes nothing, and predicts the real run', async () => {
      const { repo, dir, src } = await fresh('dry');
      await writeFile(join(src, 'a.bin'), randomBytes(700 * 1024));
      await writeFile(join(src, 'b.bin'), randomBytes(200 * 1024));
      const first = await backup(repo, src);
      await rm(join(src, 'a.bin'));
      await writeFile(join(src, 'c.bin'), randomBytes(900 * 1024));
      const second = await backup(repo, src, first);

      const untouched = await listing(dir);
      // Retention's dry run: the snapshot is still there, only treated as forgotten.
      const dry = await repo.prune({
        dryRun: true,
        dryRunForget: [first],
        backupsRunningAtHaveEnded: always,
      });
      assert.deepEqual(await listing(dir), untouched);
      assert.equal(dry.dryRun, true);
      assert.ok(dry.bytesFreed > 0, JSON.stringify(dry));
      // A real run ignores dryRunForget: it never assumes a snapshot is gone.
      const ignored = await repo.prune({ dryRunForget: [first], backupsRunningAtHaveEnded: always });
      assert.equal(ignored.bytesFreed, 0, JSON.stringify(ignored));

      await repo.forgetSnapshots([first]);
      const real = await repo.prune({ backupsRunningAtHaveEnded: always });
      const pick = (r: PruneReport) => [r.packsDeleted, r.bytesFreed, r.packsRepacked, r.bytesRepacked];
      assert.deepEqual(pick(real), pick(dry));
      await assertClean(repo);
      await assertRestores(repo, second, src);
    });

    test('packs condemned while a backup runs wait for it, and are revived when it reused them', async () => {
      const { repo, dir, src } = await fresh('waits');
      await writeFile(join(src, 'shared.bin'), randomBytes(1024 * 1024));
      const first = await backup(repo, src);
      await repo.forgetSnapshots([first]);
      // A new backup of the same data, without a parent, started before the prune: it loads the
      // index while first's packs are live and deduplicates against them. Throttled so the prune's
      // mark happens while it runs.
      const running = repo.backup({ sourcePath: src, limitReadBytesPerSec: 1024 * 1024 });
      await new Promise((r) => setTimeout(r, 300));
      let asked = 0;
      const marked = await repo.prune({
        backupsRunningAtHaveEnded: () => {
          asked++;
          return Promise.resolve(false);
        },
      });
      assert.ok(asked >= 1);
      assert.equal(marked.packsDeleted, 0);
      assert.ok(marked.packsWaiting >= 1 && marked.condemnedListsWaiting === 1, JSON.stringify(marked));
      const res = await running;
      assert.equal(res.stats.bytesNew, 0, 'the running backup deduplicated against the condemned packs');
      await repo.commitSnapshot(res.snapshotId);

      const swept = await repo.prune({ backupsRunningAtHaveEnded: always });
      assert.ok(swept.packsRevived >= 1, JSON.stringify(swept));
      assert.deepEqual(await dir.list('condemned'), []);
      await assertClean(repo);
      await assertRestores(repo, res.snapshotId, src);

      // A backup that starts after a mark never reuses condemned packs: it stores the data again.
      await repo.forgetSnapshots([res.snapshotId]);
      await repo.prune({ backupsRunningAtHaveEnded: () => Promise.resolve(false) });
      const later = await repo.backup({ sourcePath: src });
      assert.ok(later.stats.bytesNew >= 1024 * 1024, JSON.stringify(later.stats));
      await repo.commitSnapshot(later.snapshotId);
      const done = await repo.prune({ backupsRunningAtHaveEnded: always });
      assert.equal(done.packsRevived, 0);
      assert.ok(done.bytesFreed >= 1024 * 1024, JSON.stringify(done));
      await assertClean(repo);
      await assertRestores(repo, later.snapshotId, src);
    });

    test('folds many small index files into one; the vault checks clean, restores and still deduplicates', async () => {
      const { repo, dir, src } = await fresh('compact');
      // Every backup that stores data adds an index file: twelve backups, twelve files.
      const snaps: string[] = [];
      for (let i = 0; i < 12; i++) {
        await writeFile(join(src, `f${i}.bin`), randomBytes(40 * 1024));
        snaps.push(await backup(repo, src, snaps.at(-1)));
      }
      const before = await dir.list('index');
      assert.equal(before.length, 12);
      // The first snapshot's root tree dies with it: the sweep rewrites that index file, and the
      // fold then takes the sweep's file along with the other eleven.
      await repo.forgetSnapshots([snaps[0]!]);

      const dry = await repo.prune({ dryRun: true, backupsRunningAtHaveEnded: always });
      assert.deepEqual((await dir.list('index')).sort(), before.sort(), 'a dry run writes nothing');
      const r = await repo.prune({ backupsRunningAtHaveEnded: always });
      const afterFiles = await dir.list('index');
      assert.equal(r.packsDeleted, 1, JSON.stringify(r));
      assert.equal(r.indexFilesRewritten, 1, JSON.stringify(r));
      assert.equal(r.indexFilesCompacted, 12, JSON.stringify(r));
      assert.equal(dry.indexFilesCompacted, r.indexFilesCompacted, 'the dry run predicts the fold');
      assert.equal(afterFiles.length, 1, `index files left: ${afterFiles.join(', ')}`);
      console.log(
        `engine prune (${kind}): ${before.length} index files folded into ${afterFiles.length} ` +
          `(${r.indexFilesRewritten} rewritten by the sweep, ${r.indexFilesCompacted} folded)`,
      );
      await assertClean(repo);
      for (const id of snaps.slice(1))
        await repo.restore({ snapshotId: id, target: join(work, `compact-${id.slice(0, 8)}`) });
      await assertRestores(repo, snaps.at(-1)!, src);
      // The folded index still knows every blob: the same tree backed up again stores nothing new.
      const again = await repo.backup({ sourcePath: src });
      assert.equal(again.stats.blobsNew, 0, JSON.stringify(again.stats));
      await repo.commitSnapshot(again.snapshotId);
      // Nothing left to fold.
      const idle = await repo.prune({ backupsRunningAtHaveEnded: always });
      assert.equal(idle.indexFilesCompacted, 0);
      await assertClean(repo);
    });

    test('a cancelled prune stops, leaves a vault that checks clean, and the next prune finishes', async () => {
      const { repo, dir, src } = await fresh('cancel');
      for (let i = 0; i < 6; i++) await writeFile(join(src, `f${i}.bin`), randomBytes(900 * 1024));
      const first = await backup(repo, src);
      for (let i = 0; i < 6; i += 2) await rm(join(src, `f${i}.bin`));
      const second = await backup(repo, src, first);
      await repo.forgetSnapshots([first]);

      await assert.rejects(
        repo.prune({ signal: AbortSignal.abort(), backupsRunningAtHaveEnded: always }),
        (e) => isCofferError(e, 'JobCancelled'),
      );
      const controller = new AbortController();
      await assert.rejects(
        repo.prune({
          signal: controller.signal,
          backupsRunningAtHaveEnded: always,
          // Abort in the middle of the sweep, after the first pack is gone.
          onProgress: (p) => {
            if (p.phase === 'sweep' && p.done === 1) controller.abort();
          },
        }),
        (e) => isCofferError(e, 'JobCancelled'),
      );
      const mid = await repo.check({ readData: true });
      assert.equal(mid.ok, true, JSON.stringify(mid.issues));
      await assertRestores(repo, second, src);
      const rest = await repo.prune({ backupsRunningAtHaveEnded: always });
      assert.ok(rest.packsDeleted >= 1, JSON.stringify(rest));
      assert.deepEqual(await dir.list('condemned'), []);
      await assertClean(repo);
      await assertRestores(repo, second, src);
    });
  });
}
