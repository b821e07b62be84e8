/**
 * How an incremental backup reads its parent's trees: by range, neighbours together, so that
 * after many backups it reads about what the parent snapshot's trees weigh and not every tree
 * pack that holds one of them (repository-context.ts sealedTreeBytes); a shared read that fails
 * costs only the trees it could not read; and how neighbouring blobs are grouped into reads
 * (pack-ranges.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Repository } from '../../src/engine/index.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import { CofferError } from '../../src/errors/coffer-error.js';
import { packRanges } from '../../src/engine/pack/pack-ranges.js';
import { packPath } from '../../src/engine/pack/pack-writer.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import { newRepository, removeDir, tempDir } from './source-tree-fixture.js';

/** A local backend that counts the bytes and calls of every load below data/. */
class CountingBackend extends LocalBackend {
  bytes = 0;
  loads = 0;
  override async load(path: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const out = await super.load(path, range);
    if (path.startsWith('data/')) {
      this.bytes += out.length;
      this.loads++;
    }
    return out;
  }
}

describe('parent trees of an incremental backup', () => {
  let work: string;
  before(async () => {
    work = await tempDir('tree-reads');
  });
  after(async () => {
    await removeDir(work);
  });

  test('a no-change backup after many backups reads about what one backup after the first did', async () => {
    const vault = join(work, 'vault');
    const src = join(work, 'src');
    // One large directory (its tree is rewritten, whole, by every backup below) and 30 small ones.
    await mkdir(join(src, 'big'), { recursive: true });
    for (let i = 0; i < 3000; i++) await writeFile(join(src, 'big', randomBytes(12).toString('hex')), `${i}`);
    for (let d = 0; d < 30; d++) {
      await mkdir(join(src, `d${d}`));
      for (let i = 0; i < 4; i++) await writeFile(join(src, `d${d}`, `f${i}`), randomBytes(100));
    }
    const repo = await newRepository(vault);
    const backup = async (r: Repository, parent?: string) => {
      const res = await r.backup({ sourcePath: src, parentSnapshotId: parent });
      await r.commitSnapshot(res.snapshotId);
      return res;
    };
    let last = (await backup(repo)).snapshotId;
    const counted = async (): Promise<{ bytes: number; loads: number }> => {
      const backend = new CountingBackend(vault);
      const r = await Repository.open(backend, 'correct horse');
      const res = await backup(r, last);
      assert.equal(res.stats.blobsNew, 0, 'nothing changed');
      last = res.snapshotId;
      return { bytes: backend.bytes, loads: backend.loads };
    };
    const early = await counted();
    // Fifteen backups, each with a change in the large directory and in one small one: fifteen
    // tree packs, each with a copy of the large directory's tree that the next backup replaces.
    for (let k = 0; k < 15; k++) {
      await writeFile(join(src, 'big', `changed-${k}`), `${k}`);
      await writeFile(join(src, `d${k}`, 'f0'), randomBytes(100));
      last = (await backup(repo, last)).snapshotId;
    }
    const late = await counted();
    console.log(
      `parent trees: no-change backup after 1 backup read ${early.bytes} bytes in ${early.loads} reads; ` +
        `after 16 backups ${late.bytes} bytes in ${late.loads} reads`,
    );
    // Whole tree packs (how trees were read before) made this about 5x: every pack holds a
    // large-directory tree that no longer counts.
    assert.ok(late.bytes < 1.5 * early.bytes, `${late.bytes} bytes read against ${early.bytes}`);
    // Neighbours share reads: fewer reads than the 32 directories whose trees are needed.
    assert.ok(late.loads < 32, `${late.loads} reads`);
  });
});

/** A local backend whose reads of one pack fail wherever they cover one byte (a bad sector, say). */
class BadSpotBackend extends LocalBackend {
  spot: { path: string; offset: number } | null = null;
  override async load(path: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const s = this.spot;
    if (
      s &&
      path === s.path &&
      (!range || (range.offset <= s.offset && s.offset < range.offset + range.length))
    ) {
      throw new CofferError('RepositoryCorrupt', `${path}: unreadable at ${s.offset}`, { path });
    }
    return super.load(path, range);
  }
}

test('a shared read that fails costs only the trees it could not read: the others are read alone', async () => {
  const work = await tempDir('tree-reads-bad-spot');
  try {
    const src = join(work, 'src');
    for (const d of ['hurt', 'keep']) {
      await mkdir(join(src, d), { recursive: true });
      for (let i = 0; i < 20; i++) await writeFile(join(src, d, `f-${i}`), `${d} ${i}\n`);
    }
    const vault = join(work, 'vault');
    const repo = await newRepository(vault);
    const first = await repo.backup({ sourcePath: src });
    await repo.commitSnapshot(first.snapshotId);
    const root = await repo.readTree((await repo.loadSnapshot(first.snapshotId)).rootTreeId);
    const backend = new BadSpotBackend(vault);
    const reopened = await Repository.open(backend, 'correct horse');
    const ctx = (reopened as unknown as { ctx: RepositoryContext }).ctx;
    const hurt = (await ctx.loadIndex()).get(root.find((n) => n.name === 'hurt')!.subtree!)!;
    // Both subdirectories' trees are asked for in one turn and share a read, which fails.
    backend.spot = { path: packPath(hurt.packId), offset: hurt.offset + 1 };
    const r = await reopened.backup({ sourcePath: src, parentSnapshotId: first.snapshotId });
    assert.equal(r.stats.warnings.length, 1, JSON.stringify(r.stats.warnings));
    assert.match(r.stats.warnings[0]!, /^hurt: parent tree unreadable, files re-read/);
    assert.equal(r.stats.filesUnmodified, 20, 'keep/ was compared as usual');
    assert.equal(r.stats.filesNew, 20, 'hurt/ was read again');
  } finally {
    await removeDir(work);
  }
});

test('packRanges: neighbours closer than the gap share a read, no read grows past the cap', () => {
  const blobs = [
    { offset: 0, length: 10 },
    { offset: 15, length: 10 }, // gap 5: same read
    { offset: 100, length: 10 }, // gap 75: a new read
    { offset: 110, length: 200 }, // would make the read 210 bytes: a new read
    { offset: 400, length: 500 }, // larger than the cap alone: read alone
  ];
  const ranges = packRanges(blobs, (b) => b, 20, 150);
  assert.deepEqual(
    ranges.map((r) => [r.start, r.end, r.items.length]),
    [
      [0, 25, 2],
      [100, 110, 1],
      [110, 310, 1],
      [400, 900, 1],
    ],
  );
  assert.deepEqual(
    packRanges([], (b: { offset: number; length: number }) => b, 20, 150),
    [],
  );
});
