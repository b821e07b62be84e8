/**
 * The order in which a backup walks the source (src/engine/archiver/archiver.ts): depth first,
 * one subdirectory of a directory at a time, so the directories held open at once are bounded
 * by the tree's depth and not by its breadth (each open directory holds its listing and its
 * parent tree's nodes).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBackup } from '../../src/engine/archiver/archiver.js';
import { Repository } from '../../src/engine/index.js';
import type { EncodedBlob } from '../../src/engine/pack/blob-codec.js';
import { packPath } from '../../src/engine/pack/pack-writer.js';
import { sharedBlobPool } from '../../src/engine/parallel/blob-pool.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
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

/** Three subdirectories of 2,500 (empty) files and an empty one in each. */
async function threeWideDirs(source: string): Promise<void> {
  for (const d of ['a', 'b', 'c']) {
    await mkdir(join(source, d, 'inner'), { recursive: true });
    await Promise.all(Array.from({ length: 2500 }, (_, i) => writeFile(join(source, d, `f-${i}`), '')));
  }
}

test('directory listings come ahead of the walk: one request lists a directory and what follows it', async () => {
  const work = await tempDir('archiver-walk-ahead');
  try {
    const source = join(work, 'src');
    // The root's request lists it, a, a/inner and b (then 4,096 entries are listed); b/inner and
    // c are listed when the walk gets to them, each with the subdirectories after it (none here).
    await threeWideDirs(source);
    const repo = await newRepository(join(work, 'vault'));
    const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    const pool = sharedBlobPool();
    const scanDir = pool.scanDir.bind(pool);
    const scanSubdirs = pool.scanSubdirs.bind(pool);
    const countTree = pool.countTree.bind(pool);
    const requests: string[] = [];
    const counts: string[] = [];
    pool.scanDir = (path, ahead) => {
      requests.push(path.slice(source.length) || '/');
      return scanDir(path, ahead);
    };
    pool.scanSubdirs = (path, names, ahead) => {
      requests.push(`${path.slice(source.length) || '/'}: ${names.join(' ')}`);
      return scanSubdirs(path, names, ahead);
    };
    pool.countTree = (path, ahead) => {
      counts.push(path.slice(source.length) || '/');
      return countTree(path, ahead);
    };
    let result;
    try {
      result = await runBackup(ctx, { sourcePath: source });
    } finally {
      pool.scanDir = scanDir;
      pool.scanSubdirs = scanSubdirs;
      pool.countTree = countTree;
    }
    assert.deepEqual(
      requests.sort(),
      ['/', '/: c', '/b: inner'],
      'three requests, not one per directory (7)',
    );
    // The progress scanner counts the files apart, with requests of its own that list nothing
    // for the walk: its first one counts from the root and leaves what did not fit for the next.
    assert.equal(counts[0], '/');
    assert.ok(counts.length > 1 && counts.length < 7, `count requests: ${counts.join(' ')}`);
    assert.equal(result.stats.dirs, 7);
    assert.equal(result.stats.filesNew, 7500);
    const target = join(work, 'restored');
    await commitAndRestore(repo, result.snapshotId, source, target);
  } finally {
    await removeDir(work);
  }
});

test('with a parent, each directory is diffed once on a thread, and an unchanged tree is the parent’s', async () => {
  const work = await tempDir('archiver-walk-diff');
  try {
    const source = join(work, 'src');
    await threeWideDirs(source);
    const repo = await newRepository(join(work, 'vault'));
    const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    const first = await runBackup(ctx, { sourcePath: source });
    await repo.commitSnapshot(first.snapshotId);

    const pool = sharedBlobPool();
    const { scanDir, diffDir } = pool;
    const scans: string[] = [];
    const diffs: string[] = [];
    pool.scanDir = (path, ahead) => {
      scans.push(path);
      return scanDir.call(pool, path, ahead);
    };
    pool.diffDir = (path, tree, context, urgent) => {
      diffs.push(path.slice(source.length) || '/');
      return diffDir.call(pool, path, tree, context, urgent);
    };
    const backup = () => runBackup(ctx, { sourcePath: source, parentSnapshotId: first.snapshotId });
    let same;
    try {
      same = await backup();
    } finally {
      pool.scanDir = scanDir;
      pool.diffDir = diffDir;
    }
    assert.deepEqual(scans, [], 'nothing is listed but through a diff');
    assert.deepEqual(diffs.sort(), ['/', '/a', '/a/inner', '/b', '/b/inner', '/c', '/c/inner']);
    assert.equal(same.stats.filesUnmodified, 7500);
    assert.equal(same.stats.bytesRead, 0);
    assert.equal(same.stats.blobsNew, 0);
    await repo.commitSnapshot(same.snapshotId);
    const rootOf = async (id: string) => (await repo.loadSnapshot(id)).rootTreeId;
    assert.equal(await rootOf(same.snapshotId), await rootOf(first.snapshotId));

    // Changes in b/inner and c: b keeps its files' nodes, a keeps its tree.
    await writeFile(join(source, 'b', 'inner', 'new'), 'new file\n');
    await writeFile(join(source, 'c', 'f-7'), 'now with content\n');
    await rm(join(source, 'c', 'f-8'));
    const changed = await backup();
    assert.equal(changed.stats.filesNew, 1);
    assert.equal(changed.stats.filesChanged, 1);
    assert.equal(changed.stats.filesUnmodified, 7500 - 2);
    const before = await repo.readTree(await rootOf(first.snapshotId));
    await repo.commitSnapshot(changed.snapshotId);
    const after = await repo.readTree(await rootOf(changed.snapshotId));
    const subtree = (nodes: typeof before, name: string) => nodes.find((n) => n.name === name)!.subtree;
    assert.equal(subtree(after, 'a'), subtree(before, 'a'));
    assert.notEqual(subtree(after, 'b'), subtree(before, 'b'));
    assert.notEqual(subtree(after, 'c'), subtree(before, 'c'));
    assert.equal((await repo.readTree(subtree(after, 'b')!)).length, 2501);
    assert.equal((await repo.readTree(subtree(after, 'c')!)).length, 2500);
    await commitAndRestore(repo, changed.snapshotId, source, join(work, 'restored'));
  } finally {
    await removeDir(work);
  }
});

test('a parent tree that fails authentication costs a warning and a re-read, never a wrong backup', async () => {
  const work = await tempDir('archiver-walk-corrupt');
  try {
    const source = join(work, 'src');
    await mkdir(join(source, 'keep'), { recursive: true });
    await mkdir(join(source, 'hurt'), { recursive: true });
    for (let i = 0; i < 20; i++) {
      await writeFile(join(source, 'keep', `k-${i}`), `keep ${i}\n`);
      await writeFile(join(source, 'hurt', `h-${i}`), `hurt ${i}\n`);
    }
    const vault = join(work, 'vault');
    const repo = await newRepository(vault);
    const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    const first = await runBackup(ctx, { sourcePath: source });
    await repo.commitSnapshot(first.snapshotId);
    const root = await repo.readTree((await repo.loadSnapshot(first.snapshotId)).rootTreeId);
    const hurt = root.find((n) => n.name === 'hurt')!.subtree!;
    const entry = (await ctx.loadIndex()).get(hurt)!;
    // One byte of the sealed tree flipped in its pack, in a fresh process's view of the vault.
    const packFile = join(vault, packPath(entry.packId));
    const bytes = await readFile(packFile);
    bytes[entry.offset + entry.length - 3]! ^= 0xff;
    await writeFile(packFile, bytes);
    const reopened = await Repository.open(new LocalBackend(vault), 'correct horse');
    const ctx2 = (reopened as unknown as { ctx: RepositoryContext }).ctx;
    // hurt/ changed too, so its new tree is not the damaged one (an unchanged directory's tree
    // would have the same id, and a backup does not store a blob the vault lists again).
    await writeFile(join(source, 'hurt', 'h-new'), 'new\n');
    const r = await runBackup(ctx2, { sourcePath: source, parentSnapshotId: first.snapshotId });
    assert.equal(r.stats.warnings.length, 1);
    assert.match(
      r.stats.warnings[0]!,
      /^hurt: parent tree unreadable, files re-read \(.*fails authentication/,
    );
    assert.equal(r.stats.filesUnmodified, 20, 'keep/ was compared as usual');
    assert.equal(r.stats.filesNew, 21, 'hurt/ was read again');
    await commitAndRestore(reopened, r.snapshotId, source, join(work, 'restored'));
  } finally {
    await removeDir(work);
  }
});

test('a changed directory’s tree is sealed while the walk goes on, and a seal that fails fails the backup', async () => {
  const work = await tempDir('archiver-walk-seal');
  try {
    const source = join(work, 'src');
    for (const d of ['a', 'b']) {
      await mkdir(join(source, d), { recursive: true });
      for (let i = 0; i < 5; i++) await writeFile(join(source, d, `f-${i}`), `${d} ${i}\n`);
    }
    const repo = await newRepository(join(work, 'vault'));
    const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    const first = await runBackup(ctx, { sourcePath: source });
    await repo.commitSnapshot(first.snapshotId);
    const root = await repo.readTree((await repo.loadSnapshot(first.snapshotId)).rootTreeId);
    const treeOfA = root.find((n) => n.name === 'a')!.subtree!;
    await writeFile(join(source, 'a', 'f-1'), 'a changed\n');
    await writeFile(join(source, 'b', 'f-1'), 'b changed\n');

    const pool = sharedBlobPool();
    const { buildTree } = pool;
    const backup = async (holdA: (build: () => Promise<EncodedBlob>) => Promise<EncodedBlob>) => {
      pool.buildTree = (tree, nodes, drop, context) => {
        const build = () => buildTree.call(pool, tree, nodes, drop, context);
        return tree.id === treeOfA ? holdA(build) : build();
      };
      try {
        return await runBackup(
          ctx,
          { sourcePath: source, parentSnapshotId: first.snapshotId },
          { onDirectory: (rel, phase) => phase === 'open' && rel === 'b' && opened() },
        );
      } finally {
        pool.buildTree = buildTree;
      }
    };

    // a's tree is held until b is listed (or 5 s have passed, which fails the test).
    let opened = () => {};
    let bOpenedWhileAWasHeld = false;
    const r = await backup(async (build) => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          opened = () => {};
          resolve();
        }, 5000);
        opened = () => {
          bOpenedWhileAWasHeld = true;
          clearTimeout(timer);
          resolve();
        };
      });
      return build();
    });
    assert.ok(bOpenedWhileAWasHeld, 'the walk went into b before a’s tree was sealed');
    assert.equal(r.stats.filesChanged, 2);
    await commitAndRestore(repo, r.snapshotId, source, join(work, 'restored'));

    opened = () => {};
    await assert.rejects(
      backup(() => Promise.reject(new Error('tree pack write failed'))),
      /tree pack write failed/,
    );
  } finally {
    await removeDir(work);
  }
});

test('a seal that fails stops the walk at its next entry, not when the root seals', async () => {
  const work = await tempDir('archiver-walk-seal-stop');
  try {
    const source = join(work, 'src');
    const later = Array.from({ length: 40 }, (_, i) => `b-${String(i).padStart(2, '0')}`);
    for (const d of ['a', ...later]) {
      await mkdir(join(source, d), { recursive: true });
      await writeFile(join(source, d, 'f'), `${d}\n`);
    }
    const repo = await newRepository(join(work, 'vault'));
    const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    const first = await runBackup(ctx, { sourcePath: source });
    await repo.commitSnapshot(first.snapshotId);
    await writeFile(join(source, 'a', 'f'), 'a changed\n');
    const pool = sharedBlobPool();
    const { buildTree } = pool;
    pool.buildTree = () => Promise.reject(new Error('thread died building a tree'));
    const opened: string[] = [];
    try {
      await assert.rejects(
        runBackup(
          ctx,
          { sourcePath: source, parentSnapshotId: first.snapshotId },
          { onDirectory: (rel, phase) => phase === 'open' && opened.push(rel) },
        ),
        /thread died building a tree/,
      );
    } finally {
      pool.buildTree = buildTree;
    }
    const walkedAfter = opened.filter((rel) => rel.startsWith('b-')).length;
    assert.ok(walkedAfter < later.length / 2, `${walkedAfter} directories walked after the failure`);
  } finally {
    await removeDir(work);
  }
});

test('progress goes out at most every 50 ms, and the last event has the final counts', async () => {
  const work = await tempDir('archiver-walk-progress');
  try {
    const source = join(work, 'src');
    await threeWideDirs(source);
    const repo = await newRepository(join(work, 'vault'));
    const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    const events: { at: number; phase: string; filesDone: number }[] = [];
    const result = await runBackup(ctx, {
      sourcePath: source,
      onProgress: (p) => events.push({ at: performance.now(), phase: p.phase, filesDone: p.filesDone }),
    });
    assert.equal(result.stats.filesNew, 7500);
    // One event per file (and per chunk) before: 7,500 of them at least.
    assert.ok(events.length >= 2 && events.length < 500, `${events.length} events`);
    const last = events.at(-1)!;
    assert.equal(last.phase, 'finalizing');
    assert.equal(last.filesDone, 7500);
    for (let i = 1; i < events.length - 1; i++) {
      const gap = events[i]!.at - events[i - 1]!.at;
      assert.ok(gap >= 49.5, `events ${i - 1} and ${i} ${gap.toFixed(1)} ms apart`);
    }
  } finally {
    await removeDir(work);
  }
});
