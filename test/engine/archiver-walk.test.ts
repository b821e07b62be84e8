/**
 * The order in which a backup walks the source (src/engine/archiver/archiver.ts): depth first,
 * one subdirectory of a directory at a time, so the directories held open at once are bounded
 * by the tree's depth and not by its breadth (each open directory holds its listing and its
 * parent tree's nodes).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBackup } from '../../src/engine/archiver/archiver.js';
import { sharedBlobPool } from '../../src/engine/parallel/blob-pool.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import { commitAndRestore, newRepository, removeDir, tempDir } from './source-tree-fixture.js';

/** A tree `depth` levels of directories deep, `fanout` subdirectories and 3 files in each. */
async function wideTree(root: string, depth: number, fanout: number): Promise<number> {
  let dirs = 1;
  const fill = async (dir: string, level: number): Promise<void> => {
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < 3; f++) await writeFile(join(dir, `file-${f}.txt`), `${dir} ${f}\n`.repeat(50));
    if (level === depth) return;
    for (let d = 0; d < fanout; d++) {
      dirs++;
      await fill(join(dir, `sub-${d}`), level + 1);
    }
  };
  await fill(root, 0);
  return dirs;
}

const isInside = (rel: string, dir: string) => dir === '' || rel.startsWith(`${dir}/`);

for (const run of ['first backup', 'backup with a parent']) {
  test(`${run}: the walk holds open only the directories on one path from the root`, async () => {
    const work = await tempDir('archiver-walk');
    try {
      const source = join(work, 'src');
      const dirs = await wideTree(source, 3, 4);
      const repo = await newRepository(join(work, 'vault'));
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      let parentSnapshotId: string | undefined;
      if (run === 'backup with a parent') {
        const first = await runBackup(ctx, { sourcePath: source });
        await repo.commitSnapshot(first.snapshotId);
        parentSnapshotId = first.snapshotId;
      }
      const open: string[] = [];
      let maxOpen = 0;
      let opened = 0;
      const result = await runBackup(
        ctx,
        { sourcePath: source, parentSnapshotId },
        {
          onDirectory: (rel, phase) => {
            if (phase === 'done') {
              assert.equal(open.pop(), rel, 'directories finish innermost first');
              return;
            }
            opened++;
            // Every directory still open is an ancestor of the one just listed: one path.
            for (const dir of open) assert.ok(isInside(rel, dir), `${rel} listed while ${dir} was open`);
            open.push(rel);
            maxOpen = Math.max(maxOpen, open.length);
          },
        },
      );
      assert.equal(opened, dirs);
      assert.equal(open.length, 0);
      assert.equal(maxOpen, 4, 'root and three levels below it');
      assert.deepEqual(result.stats.warnings, []);
      const target = join(work, 'restored');
      await commitAndRestore(repo, result.snapshotId, source, target);
    } finally {
      await removeDir(work);
    }
  });
}

test('directory listings come ahead of the walk: one request lists a directory and what follows it', async () => {
  const work = await tempDir('archiver-walk-ahead');
  try {
    const source = join(work, 'src');
    // Three subdirectories of 2,500 (empty) files and an empty one in each: the root's request
    // lists it, a, a/inner and b (then 4,096 entries are listed); b/inner and c are listed when
    // the walk gets to them.
    for (const d of ['a', 'b', 'c']) {
      await mkdir(join(source, d, 'inner'), { recursive: true });
      await Promise.all(Array.from({ length: 2500 }, (_, i) => writeFile(join(source, d, `f-${i}`), '')));
    }
    const repo = await newRepository(join(work, 'vault'));
    const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    const first = await runBackup(ctx, { sourcePath: source });
    await repo.commitSnapshot(first.snapshotId);

    const pool = sharedBlobPool();
    const scanDir = pool.scanDir.bind(pool);
    const requests: string[] = [];
    pool.scanDir = (path, ahead) => {
      requests.push(path.slice(source.length) || '/');
      return scanDir(path, ahead);
    };
    let result;
    try {
      result = await runBackup(ctx, { sourcePath: source, parentSnapshotId: first.snapshotId });
    } finally {
      pool.scanDir = scanDir;
    }
    assert.deepEqual(requests, ['/', '/b/inner', '/c'], 'three requests, not one per directory (7)');
    assert.equal(result.stats.dirs, 7);
    assert.equal(result.stats.filesUnmodified, 7500);
    const target = join(work, 'restored');
    await commitAndRestore(repo, result.snapshotId, source, target);
  } finally {
    await removeDir(work);
  }
});
