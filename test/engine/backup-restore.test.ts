import assert from 'node:assert/strict';
import { appendFile, chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BackupProgress, Repository } from '../../src/engine/index.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { backends, createTestStorage, type TestStorage } from '../support/backends.js';
import {
  addAwkwardCases,
  copyRealDocs,
  describeTree,
  diffTrees,
  newRepository,
  removeDir,
  tempDir,
} from './source-tree-fixture.js';

for (const kind of backends()) {
  describe(`backup and restore round trip (${kind} storage)`, () => {
    let work: string;
    let storage: TestStorage;
    let source: string;
    let repo: Repository;
    let firstId: string;

    before(async () => {
      work = await tempDir('roundtrip');
      storage = await createTestStorage(kind);
      source = join(work, 'source');
      await mkdir(source);
      copyRealDocs(source);
      await addAwkwardCases(source);
      repo = await newRepository(storage.open(storage.location('repo')));
    });

    after(async () => {
      await storage.cleanup();
      await removeDir(work);
    });

    it('restores a real tree byte for byte with modes, mtimes and symlinks', async (t) => {
      const progress: BackupProgress[] = [];
      const started = performance.now();
      const result = await repo.backup({
        sourcePath: source,
        tags: { job: 'j1' },
        onProgress: (p) => progress.push(p),
      });
      const backupSec = (performance.now() - started) / 1000;
      firstId = result.snapshotId;
      assert.equal(result.parentSnapshotId, null);
      assert.deepEqual(result.stats.warnings, []);
      assert.ok(result.stats.filesNew > 20);
      assert.equal(result.stats.bytesRead, result.stats.bytesScanned);
      const last = progress.at(-1)!;
      assert.equal(last.phase, 'finalizing');
      assert.equal(last.bytesDone, result.stats.bytesScanned);
      assert.equal(last.filesDone, result.stats.filesNew);
      assert.ok(progress.some((p) => p.bytesTotal > 0 && p.currentPath !== ''));

      // Written as pending: invisible to the default listing until the catalog commits it.
      assert.deepEqual(await repo.listSnapshots(), []);
      assert.equal((await repo.listSnapshots({ includePending: true }))[0]?.state, 'pending');
      await repo.commitSnapshot(firstId);
      await repo.commitSnapshot(firstId); // idempotent
      const listed = await repo.listSnapshots();
      assert.equal(listed.length, 1);
      assert.equal(listed[0]!.id, firstId);
      assert.deepEqual(listed[0]!.tags, { job: 'j1' });
      assert.equal(listed[0]!.sourcePath, source);

      const target = join(work, 'restored');
      const rs = performance.now();
      const restored = await repo.restore({ snapshotId: firstId, target });
      const restoreSec = (performance.now() - rs) / 1000;
      t.diagnostic(
        `${kind}: backup ${(result.stats.bytesScanned / 1e6 / backupSec).toFixed(1)} MB/s, restore ${(restored.bytesWritten / 1e6 / restoreSec).toFixed(1)} MB/s over ${(result.stats.bytesScanned / 1e6).toFixed(1)} MB`,
      );
      assert.equal(diffTrees(source, target), '');
      const want = await describeTree(source);
      const got = await describeTree(target);
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
      for (const [path, facts] of want) assert.deepEqual(got.get(path), facts, path);
      assert.equal(got.get('odd/link-dangling')?.linkTarget, 'does/not/exist');
      assert.equal(got.get('odd/mode-751')?.mode, 0o751);
      assert.equal(got.get('odd/sticky')?.mode, 0o1777);
      assert.equal(got.get('odd/empty-dir/nested-empty')?.type, 'dir');
      assert.ok(got.has('odd/cafe\u0301-nfd.txt') && got.has('odd/café-nfc.txt'));
    });

    it('restores a subpath only', async () => {
      const target = join(work, 'sub');
      const r = await repo.restore({ snapshotId: firstId, target, subpath: 'odd/dir-700' });
      assert.equal(r.files, 1);
      assert.equal(diffTrees(join(source, 'odd/dir-700'), target), '');
      const single = join(work, 'single');
      await repo.restore({ snapshotId: firstId.slice(0, 12), target: single, subpath: '/odd/big.bin' });
      assert.equal(diffTrees(join(source, 'odd/big.bin'), join(single, 'big.bin')), '');
      await assert.rejects(repo.restore({ snapshotId: firstId, target: single, subpath: 'odd/nope' }), (e) =>
        isCofferError(e, 'InvalidRequest'),
      );
    });

    it('deduplicates a second full backup of the same data', async () => {
      const again = await repo.backup({ sourcePath: source });
      assert.equal(again.stats.blobsNew, 0);
      assert.equal(again.stats.bytesStored, 0);
      assert.equal(again.stats.bytesRead, again.stats.bytesScanned);
      await repo.discardSnapshot(again.snapshotId);
      await assert.rejects(repo.loadSnapshot(again.snapshotId), (e) => isCofferError(e, 'PointNotFound'));
    });

    it('does not re-read unchanged files when given a parent', async () => {
      const unchanged = await repo.backup({ sourcePath: source, parentSnapshotId: firstId });
      assert.equal(unchanged.stats.bytesRead, 0);
      assert.equal(unchanged.stats.filesNew + unchanged.stats.filesChanged, 0);
      assert.equal(unchanged.parentSnapshotId, firstId);
      // Nothing changed: every directory is its parent's tree again, down to the root.
      const first = await repo.loadSnapshot(firstId);
      assert.equal((await repo.loadSnapshot(unchanged.snapshotId)).rootTreeId, first.rootTreeId);
      assert.equal(unchanged.stats.blobsNew, 0);

      await appendFile(join(source, 'odd', 'mode-751'), 'echo changed\n');
      await writeFile(join(source, 'odd', 'new-file'), 'brand new content\n');
      const changed = await repo.backup({ sourcePath: source, parentSnapshotId: firstId });
      const expectedRead =
        Buffer.byteLength('#!/bin/sh\necho hi\necho changed\n') + Buffer.byteLength('brand new content\n');
      assert.equal(changed.stats.bytesRead, expectedRead);
      assert.equal(changed.stats.filesChanged, 1);
      assert.equal(changed.stats.filesNew, 1);
      // A change deep down gives the root a new tree; untouched directories keep their trees.
      const changedRoot = (await repo.loadSnapshot(changed.snapshotId)).rootTreeId;
      assert.notEqual(changedRoot, first.rootTreeId);
      const before = await repo.readTree(first.rootTreeId);
      const after = await repo.readTree(changedRoot);
      for (const node of after.filter((n) => n.type === 'dir')) {
        const old = before.find((n) => n.name === node.name)!;
        if (node.name === 'odd') assert.notEqual(node.subtree, old.subtree);
        else assert.equal(node.subtree, old.subtree, `${node.name} kept its tree`);
      }
      await repo.commitSnapshot(changed.snapshotId);
      const target = join(work, 'restored-incremental');
      await repo.restore({ snapshotId: changed.snapshotId, target });
      assert.equal(diffTrees(source, target), '');
    });

    it('gives a directory a new tree when an entry is renamed or its metadata changes', async () => {
      const dir = join(work, 'renames');
      await mkdir(dir);
      await writeFile(join(dir, 'a'), 'alpha\n');
      await writeFile(join(dir, 'b'), 'beta\n');
      const base = await repo.backup({ sourcePath: dir });
      await repo.commitSnapshot(base.snapshotId);
      const baseRoot = (await repo.loadSnapshot(base.snapshotId)).rootTreeId;
      await rename(join(dir, 'b'), join(dir, 'c'));
      const renamed = await repo.backup({ sourcePath: dir, parentSnapshotId: base.snapshotId });
      const renamedRoot = (await repo.loadSnapshot(renamed.snapshotId)).rootTreeId;
      assert.notEqual(renamedRoot, baseRoot);
      assert.deepEqual(
        (await repo.readTree(renamedRoot)).map((n) => n.name),
        ['a', 'c'],
      );
      await repo.commitSnapshot(renamed.snapshotId);
      await chmod(join(dir, 'a'), 0o600);
      const chmodded = await repo.backup({ sourcePath: dir, parentSnapshotId: renamed.snapshotId });
      const nodes = await repo.readTree((await repo.loadSnapshot(chmodded.snapshotId)).rootTreeId);
      assert.equal(nodes.find((n) => n.name === 'a')!.mode, 0o600);
      const target = join(work, 'restored-renames');
      await repo.restore({ snapshotId: chmodded.snapshotId, target });
      assert.equal(diffTrees(dir, target), '');
    });

    it('falls back to reading everything when the parent is gone, with a warning', async () => {
      const r = await repo.backup({ sourcePath: join(source, 'odd'), parentSnapshotId: 'ab'.repeat(32) });
      assert.equal(r.parentSnapshotId, null);
      assert.equal(r.stats.bytesRead, r.stats.bytesScanned);
      assert.match(r.stats.warnings.join('\n'), /parent snapshot .* not found/);
      await repo.discardSnapshot(r.snapshotId);
    });

    it('reports problems with the source root as SourceUnreadable', async () => {
      await assert.rejects(repo.backup({ sourcePath: join(work, 'missing') }), (e) =>
        isCofferError(e, 'SourceUnreadable'),
      );
      await assert.rejects(repo.backup({ sourcePath: join(source, 'odd', 'big.bin') }), (e) =>
        isCofferError(e, 'SourceUnreadable'),
      );
      await assert.rejects(repo.loadSnapshot('0'.repeat(64)), (e) => isCofferError(e, 'PointNotFound'));
      await assert.rejects(repo.commitSnapshot('f'.repeat(64)), (e) => isCofferError(e, 'PointNotFound'));
    });

    it('skips entries it cannot back up with a warning', async () => {
      const src = join(work, 'warn-src');
      await mkdir(src);
      await writeFile(join(src, 'ok.txt'), 'fine');
      const { spawnSync } = await import('node:child_process');
      spawnSync('mkfifo', [join(src, 'a-fifo')]);
      const r = await repo.backup({ sourcePath: src });
      assert.equal(r.stats.filesNew, 1);
      assert.equal(r.stats.warnings.length, 1);
      assert.match(r.stats.warnings[0]!, /^a-fifo: special file/);
    });
  });
}
