import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Repository } from '../../src/engine/index.js';
import { packPath } from '../../src/engine/pack/pack-writer.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import type { Backend } from '../../src/storage/backend.js';
import { backends, createTestStorage, type TestStorage } from '../support/backends.js';
import { newRepository, removeDir, tempDir } from './source-tree-fixture.js';

for (const kind of backends()) {
  describe(`cancellation, rate limit and check (${kind} storage)`, () => {
    let work: string;
    let storage: TestStorage;
    let source: string;
    let backend: Backend;
    let repo: Repository;

    before(async () => {
      work = await tempDir('cancel');
      storage = await createTestStorage(kind);
      source = join(work, 'source');
      await mkdir(source);
      for (let i = 0; i < 4; i++) await writeFile(join(source, `random-${i}.bin`), randomBytes(1024 * 1024));
      backend = storage.open(storage.location('repo'));
      repo = await newRepository(backend);
    });

    after(async () => {
      await storage.cleanup();
      await removeDir(work);
    });

    it('limits the read rate', async () => {
      const small = join(work, 'small');
      await mkdir(small);
      await writeFile(join(small, 'a.bin'), randomBytes(600 * 1024));
      const started = performance.now();
      const r = await repo.backup({ sourcePath: small, limitReadBytesPerSec: 1024 * 1024 });
      const sec = (performance.now() - started) / 1000;
      assert.equal(r.stats.bytesRead, 600 * 1024);
      assert.ok(sec > 0.45, `took ${sec}s at 1 MiB/s for 600 KiB`);
      await repo.discardSnapshot(r.snapshotId);
    });

    it('stops promptly on abort, writes no snapshot, and leaves a vault that checks clean', async () => {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 400);
      const started = performance.now();
      let abortedAt = 0;
      controller.signal.addEventListener('abort', () => (abortedAt = performance.now()));
      await assert.rejects(
        repo.backup({ sourcePath: source, signal: controller.signal, limitReadBytesPerSec: 2 * 1024 * 1024 }),
        (e) => isCofferError(e, 'JobCancelled'),
      );
      clearTimeout(timer);
      const stopLatency = performance.now() - abortedAt;
      assert.ok(abortedAt > started && stopLatency < 500, `stopped ${stopLatency} ms after abort`);
      assert.deepEqual(await repo.listSnapshots({ includePending: true }), []);
      if (kind === 'local') {
        // The pack being written when the backup stopped was discarded, not left half-written.
        assert.deepEqual(await readdir(join(backend.location, 'tmp')).catch(() => []), []);
      }
      const report = await repo.check({ readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.issues));
      assert.ok(report.issues.every((i) => i.severity === 'info'));

      // An already-aborted signal is refused before any work.
      await assert.rejects(repo.backup({ sourcePath: source, signal: AbortSignal.abort() }), (e) =>
        isCofferError(e, 'JobCancelled'),
      );
    });

    it('check --read-data names the blob behind a flipped byte', async () => {
      const r = await repo.backup({ sourcePath: source });
      await repo.commitSnapshot(r.snapshotId);
      const clean = await repo.check({ readData: true });
      assert.equal(clean.ok, true, JSON.stringify(clean.issues));
      assert.equal(clean.counts.snapshots, 1);
      assert.ok(clean.counts.bytesRead > 4 * 1024 * 1024);

      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      const index = await ctx.loadIndex();
      // Pick a data blob of the snapshot: the first chunk of random-2.bin.
      const root = await ctx.loadTree(index, (await repo.loadSnapshot(r.snapshotId)).rootTreeId);
      const victimBlob = root.find((n) => n.name === 'random-2.bin')!.content![0]!;
      const entry = index.get(victimBlob)!;
      // Damage the stored pack itself, below the engine, as a bad disk or bucket would.
      const pack = await backend.load(packPath(entry.packId));
      pack[entry.offset + 100] = pack[entry.offset + 100]! ^ 0x01;
      await backend.save(packPath(entry.packId), pack);

      const structural = await repo.check({ readData: false });
      assert.equal(structural.ok, true);
      const full = await repo.check({ readData: true });
      assert.equal(full.ok, false);
      const damaged = full.issues.filter((i) => i.kind === 'blob-damaged');
      assert.deepEqual(
        damaged.map((i) => i.ids.blob),
        [victimBlob],
      );
      assert.ok(full.issues.some((i) => i.kind === 'pack-hash-mismatch' && i.ids.pack === entry.packId));
      // The damaged blob is traced to the file that needs it.
      const files = full.issues.filter((i) => i.kind === 'file-damaged');
      assert.deepEqual(
        files.map((i) => [i.ids.snapshot, i.ids.path, i.ids.blobs]),
        [[r.snapshotId, '/random-2.bin', [victimBlob]]],
      );
      assert.match(files[0]!.message, /random-2\.bin.*RepositoryCorrupt/);

      // Restore: the other files arrive intact, the damaged one fails by name and is not left behind.
      const target = join(work, 'restore-damaged');
      await assert.rejects(
        repo.restore({ snapshotId: r.snapshotId, target }),
        (e) =>
          isCofferError(e, 'RepositoryCorrupt') &&
          e.message.includes(victimBlob) &&
          e.message.includes('1 of 4 file(s)') &&
          e.message.includes('random-2.bin') &&
          JSON.stringify(e.context.damagedFiles) === JSON.stringify(['random-2.bin']),
      );
      assert.deepEqual((await readdir(target)).sort(), ['random-0.bin', 'random-1.bin', 'random-3.bin']);
      for (const name of ['random-0.bin', 'random-1.bin', 'random-3.bin'])
        assert.ok((await readFile(join(target, name))).equals(await readFile(join(source, name))), name);
      // Only the unaffected file, when asked for by path: a clean restore.
      const single = await repo.restore({
        snapshotId: r.snapshotId,
        target: join(work, 'one'),
        subpath: 'random-3.bin',
      });
      assert.equal(single.files, 1);
    });

    it('a missing pack fails only the files that need it, and check names them', async () => {
      const src = join(work, 'two-packs');
      await mkdir(src);
      await writeFile(join(src, 'a.bin'), randomBytes(300 * 1024));
      const first = await repo.backup({ sourcePath: src });
      await repo.commitSnapshot(first.snapshotId);
      await writeFile(join(src, 'b.bin'), randomBytes(300 * 1024));
      const second = await repo.backup({ sourcePath: src, parentSnapshotId: first.snapshotId });
      await repo.commitSnapshot(second.snapshotId);
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      const index = await ctx.loadIndex();
      const root = await ctx.loadTree(index, (await repo.loadSnapshot(second.snapshotId)).rootTreeId);
      const packOfB = index.get(root.find((n) => n.name === 'b.bin')!.content![0]!)!.packId;
      assert.notEqual(packOfB, index.get(root.find((n) => n.name === 'a.bin')!.content![0]!)!.packId);
      await backend.remove(packPath(packOfB));

      const report = await repo.check({ readData: false });
      assert.ok(report.issues.some((i) => i.kind === 'pack-missing' && i.ids.pack === packOfB));
      const files = report.issues.filter(
        (i) => i.kind === 'file-damaged' && i.ids.snapshot === second.snapshotId,
      );
      assert.deepEqual(
        files.map((i) => i.ids.path),
        ['/b.bin'],
      );
      const target = join(work, 'restore-missing-pack');
      await assert.rejects(
        repo.restore({ snapshotId: second.snapshotId, target }),
        (e) => isCofferError(e, 'RepositoryCorrupt') && e.message.includes('b.bin'),
      );
      assert.deepEqual(await readdir(target), ['a.bin']);
    });
  });
}
