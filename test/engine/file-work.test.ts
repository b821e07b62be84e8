/**
 * The backup's file path on pool threads (src/engine/parallel/file-work.ts): directory listings,
 * files read part by part with the same chunks the streaming chunker finds, the known-blob filter,
 * and the archiver's recovery when the filter wrongly calls a chunk known.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gearTableFromSeed, StreamingChunker } from '../../src/engine/chunker/fastcdc.js';
import { runBackup } from '../../src/engine/archiver/archiver.js';
import { isRecycledSize, wholeBuffer } from '../../src/engine/buffer-recycler.js';
import { decodeBlob } from '../../src/engine/pack/blob-codec.js';
import { BlobPool } from '../../src/engine/parallel/blob-pool.js';
import {
  type FilePartOutcome,
  FileSession,
  listNames,
  type PartChunk,
  type ReadContext,
  type ScannedDir,
  scanDirectories,
  scanDirectory,
} from '../../src/engine/parallel/file-work.js';
import { filterHas, KnownBlobFilter } from '../../src/engine/parallel/known-filter.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import {
  diffTrees,
  newRepository,
  removeDir,
  tempDir,
  TEST_CHUNKER,
  testReadContext,
} from './source-tree-fixture.js';

const key = randomBytes(32);
const gear = gearTableFromSeed(randomBytes(32));

const context = (knownIds: string[] = []): ReadContext => testReadContext(key, gear, knownIds);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The chunks the streaming chunker (the reference) finds in `data`. */
function referenceChunks(data: Buffer): { id: string; offset: number; length: number }[] {
  const chunker = new StreamingChunker(gear, TEST_CHUNKER);
  const out: { id: string; offset: number; length: number }[] = [];
  let offset = 0;
  const take = (c: Buffer) => {
    out.push({ id: sha(c), offset, length: c.length });
    offset += c.length;
  };
  for (let i = 0; i < data.length; i += 100_000)
    for (const c of chunker.push(data.subarray(i, i + 100_000))) take(c);
  const last = chunker.finish();
  if (last) take(last);
  return out;
}

/** Reads a whole file through a session in parts of at most `part` bytes. */
function readAll(path: string, ctx: ReadContext, expectedSize: number, part: number): FilePartOutcome[] {
  const opened = FileSession.open(path, ctx, expectedSize);
  if (!(opened instanceof FileSession)) return [opened];
  const parts: FilePartOutcome[] = [];
  for (;;) {
    const p = opened.next(part);
    parts.push(p);
    if (p.status === 'error' || p.eof) return parts;
  }
}

function chunksOf(parts: FilePartOutcome[]): PartChunk[] {
  return parts.flatMap((p) => (p.status === 'part' ? p.chunks : []));
}

describe('file work on pool threads', () => {
  let dir: string;
  let data: Buffer;
  before(async () => {
    dir = await tempDir('file-work');
    // Compressible and random stretches, several chunks of the test chunker (16/64/256 KiB).
    data = Buffer.concat([
      randomBytes(300 * 1024),
      Buffer.alloc(400 * 1024, 'a line of text that compresses\n'),
      randomBytes(333 * 1024 + 7),
    ]);
    await writeFile(join(dir, 'big'), data);
  });
  after(() => removeDir(dir));

  test('a file read in parts gives the streaming chunker’s chunks, whatever the part size', () => {
    const expected = referenceChunks(data);
    assert.ok(expected.length > 4, 'the sample spans several chunks');
    for (const part of [1, 50_000, 256 * 1024, 4 * 1024 * 1024]) {
      const parts = readAll(join(dir, 'big'), context(), data.length, part);
      assert.ok(parts.every((p) => p.status === 'part'));
      const got = chunksOf(parts);
      assert.deepEqual(
        got.map(({ id, offset, length }) => ({ id, offset, length })),
        expected,
        `part size ${part}`,
      );
      for (const c of got) {
        assert.equal(c.kind, 'plain', 'a large file’s chunks come back as plaintext');
        if (c.kind === 'plain') assert.ok(c.data.equals(data.subarray(c.offset, c.offset + c.length)));
      }
      const read = parts.reduce((n, p) => n + (p.status === 'part' ? p.bytesRead : 0), 0);
      assert.equal(read, data.length);
      for (const p of parts) if (p.status === 'part') assert.ok(p.bytesRead <= Math.max(part, 1));
    }
  });

  test('a large file’s chunks leave in the pooled buffers they were read into, one each', () => {
    const chunks = chunksOf(readAll(join(dir, 'big'), context(), data.length, 1 << 20));
    const buffers = new Set<ArrayBufferLike>();
    for (const c of chunks) {
      assert.ok(c.kind === 'plain');
      // A view from the start of a recycler's buffer travels to another thread whole, uncopied.
      assert.equal(c.data.byteOffset, 0);
      assert.ok(isRecycledSize(c.data.buffer.byteLength), `chunk at ${c.offset}: a pooled buffer`);
      assert.equal(wholeBuffer(c.data), c.data.buffer);
      buffers.add(c.data.buffer);
    }
    assert.equal(buffers.size, chunks.length, 'no two chunks share a buffer');
  });

  test('small files read part by part in turn on one thread each get their own bytes', async () => {
    // Under a read rate limit a file is read in parts; sessions of one thread take turns, and
    // the read buffer they share must not carry one file's bytes into another's chunk.
    const a = randomBytes(12_000);
    const b = Buffer.alloc(9_000, 'b');
    await writeFile(join(dir, 'turn-a'), a);
    await writeFile(join(dir, 'turn-b'), b);
    const sa = FileSession.open(join(dir, 'turn-a'), context(), a.length);
    const sb = FileSession.open(join(dir, 'turn-b'), context(), b.length);
    assert.ok(sa instanceof FileSession && sb instanceof FileSession);
    const sessions: [name: 'a' | 'b', session: FileSession][] = [
      ['a', sa],
      ['b', sb],
    ];
    const got: Record<'a' | 'b', PartChunk[]> = { a: [], b: [] };
    let done = { a: false, b: false };
    while (!done.a || !done.b) {
      for (const [name, session] of sessions) {
        if (done[name]) continue;
        const p: FilePartOutcome = session.next(1000);
        assert.equal(p.status, 'part');
        if (p.status !== 'part') return;
        got[name].push(...p.chunks);
        if (p.eof) done = { ...done, [name]: true };
      }
    }
    assert.deepEqual(
      got.a.map((c) => c.id),
      [sha(a)],
    );
    assert.deepEqual(
      got.b.map((c) => c.id),
      [sha(b)],
    );
  });

  test('chunks the filter knows come back as ids only', () => {
    const expected = referenceChunks(data);
    const knownIds = expected.filter((_, i) => i % 2 === 0).map((c) => c.id);
    const got = chunksOf(readAll(join(dir, 'big'), context(knownIds), data.length, 1 << 20));
    assert.deepEqual(
      got.map((c) => c.kind),
      expected.map((_, i) => (i % 2 === 0 ? 'known' : 'plain')),
    );
  });

  test('a small file is one chunk, sealed on the spot; an empty file has none', async () => {
    const small = Buffer.from('small file contents\n'.repeat(100));
    await writeFile(join(dir, 'small'), small);
    const [chunk, ...rest] = chunksOf(readAll(join(dir, 'small'), context(), small.length, 1 << 20));
    assert.equal(rest.length, 0);
    assert.ok(chunk && chunk.kind === 'sealed');
    assert.equal(chunk.id, sha(small));
    const ref = { id: chunk.id, compressed: chunk.compressed, uncompressedLength: small.length };
    assert.ok(decodeBlob(key, chunk.sealed, ref, 'p').equals(small));

    await writeFile(join(dir, 'empty'), '');
    const parts = readAll(join(dir, 'empty'), context(), 0, 1 << 20);
    assert.deepEqual(parts, [{ status: 'part', chunks: [], bytesRead: 0, eof: true }]);
  });

  test('a file that grew or shrank since it was listed is read to its real end', async () => {
    await writeFile(join(dir, 'grew'), data.subarray(0, 5000));
    await appendFile(join(dir, 'grew'), data.subarray(5000, 900_000));
    const grew = chunksOf(readAll(join(dir, 'grew'), context(), 5000, 1 << 20));
    assert.equal(
      grew.reduce((n, c) => n + c.length, 0),
      900_000,
    );
    assert.deepEqual(
      grew.map((c) => c.id),
      referenceChunks(data.subarray(0, 900_000)).map((c) => c.id),
    );
    await writeFile(join(dir, 'shrank'), data.subarray(0, 1000));
    const shrank = chunksOf(readAll(join(dir, 'shrank'), context(), data.length, 1 << 20));
    assert.deepEqual(
      shrank.map((c) => c.id),
      [sha(data.subarray(0, 1000))],
    );
  });

  test('open errors come back as outcomes: a missing file, and a symlink swapped in', async () => {
    assert.deepEqual(readAll(join(dir, 'missing'), context(), 10, 1 << 20), [
      { status: 'error', stage: 'open', errno: 'ENOENT', position: 0 },
    ]);
    await symlink('big', join(dir, 'link'));
    const [out] = readAll(join(dir, 'link'), context(), 10, 1 << 20);
    assert.ok(out && out.status === 'error' && out.errno === 'ELOOP', 'O_NOFOLLOW refuses the link');
  });

  test('a directory listing carries lstat facts, link targets and undecodable names', async () => {
    const d = join(dir, 'listing');
    await mkdir(join(d, 'sub'), { recursive: true });
    await writeFile(join(d, 'f'), 'abc');
    await symlink('f', join(d, 'l'));
    await writeFile(Buffer.concat([Buffer.from(`${d}/`), Buffer.from([0x66, 0xff, 0x66])]), 'x');
    const listing = scanDirectory(d);
    assert.equal(listing.error, null);
    const byName = new Map(listing.entries.map((e) => [e.name, e]));
    assert.equal(byName.get('sub')?.kind, 'dir');
    assert.equal(byName.get('f')?.kind, 'file');
    assert.equal(byName.get('f')?.size, 3);
    assert.equal(byName.get('l')?.kind, 'symlink');
    assert.equal(byName.get('l')?.linkTarget, 'f');
    assert.deepEqual(listing.invalidNames, ['66ff66']);
    assert.equal(listing.entries.length, 3);
    assert.equal(scanDirectory(join(dir, 'nope')).error, 'ENOENT');
    // A real U+FFFD is a valid name; only the invalid bytes are set apart (names are read as
    // strings first, and again as bytes when one decodes to U+FFFD).
    const clean = join(dir, 'listing-fffd');
    await mkdir(clean);
    await writeFile(join(clean, 'a\uFFFDb'), '');
    await writeFile(join(clean, 'plain'), '');
    const valid = listNames(clean);
    assert.deepEqual(valid.names?.sort(), ['a\uFFFDb', 'plain']);
    assert.deepEqual(valid.error === null && valid.invalidNames, []);
    await writeFile(Buffer.concat([Buffer.from(`${clean}/`), Buffer.from([0x66, 0xff])]), '');
    const mixed = listNames(clean);
    assert.deepEqual(mixed.names?.sort(), ['a\uFFFDb', 'plain']);
    assert.deepEqual(mixed.error === null && mixed.invalidNames, ['66ff']);
  });

  test('a listing reads subdirectories ahead, depth first in name order, up to about a budget', async () => {
    const d = join(dir, 'ahead');
    for (const sub of ['b/inner', 'a/x', 'c']) await mkdir(join(d, sub), { recursive: true });
    for (const f of ['a/1', 'a/2', 'a/x/1', 'b/1', 'c/1', 'c/2', 'top']) await writeFile(join(d, f), f);
    const names = (l: ScannedDir | undefined) => [...(l?.subdirs?.keys() ?? [])];
    assert.equal(scanDirectories(d, 0).subdirs, undefined, 'no budget: the directory alone');
    const all = scanDirectories(d, 100);
    assert.deepEqual(names(all), ['a', 'b', 'c']);
    assert.deepEqual(names(all.subdirs?.get('a')), ['x']);
    assert.deepEqual(names(all.subdirs?.get('b')), ['inner']);
    assert.deepEqual(
      all.subdirs
        ?.get('c')
        ?.entries.map((e) => e.name)
        .sort(),
      ['1', '2'],
    );
    // 4 entries at the top leave 2: a (3 entries) is listed, then the budget is spent.
    const some = scanDirectories(d, 6);
    assert.deepEqual(names(some), ['a']);
    assert.equal(some.subdirs?.get('a')?.subdirs, undefined);
  });

  test('the known-blob filter never misses an id it was built from', () => {
    const ids = Array.from({ length: 20_000 }, () => randomBytes(32));
    const filter = KnownBlobFilter.build(
      ids.slice(0, 10_000).map((b) => b.toString('hex')),
      10_000,
    );
    assert.ok(ids.slice(0, 10_000).every((b) => filterHas(filter.table, b)));
    assert.equal(ids.slice(10_000).filter((b) => filterHas(filter.table, b)).length, 0);
    const empty = KnownBlobFilter.build([], 0);
    assert.equal(filterHas(empty.table, ids[0]!), false);
  });

  test('pool threads and the calling thread read a file identically, part by part', async () => {
    const ctx = context(
      referenceChunks(data)
        .slice(0, 2)
        .map((c) => c.id),
    );
    const results: PartChunk[][] = [];
    for (const size of [0, 2]) {
      const pool = new BlobPool(size);
      try {
        const file = pool.openFile(join(dir, 'big'), ctx, data.length);
        const chunks: PartChunk[] = [];
        for (;;) {
          const part = await file.next(200_000);
          assert.equal(part.status, 'part');
          if (part.status !== 'part') break;
          chunks.push(...part.chunks);
          if (part.eof) break;
        }
        await file.close();
        await pool.releaseContext(ctx);
        results.push(chunks);
      } finally {
        await pool.close();
      }
    }
    const strip = (cs: PartChunk[]) => cs.map((c) => ({ id: c.id, kind: c.kind, offset: c.offset }));
    assert.deepEqual(strip(results[0]!), strip(results[1]!));
  });

  test('a file whose thread dies fails its next read at once, and closing it does not hang', async () => {
    const pool = new BlobPool(1);
    const file = pool.openFile(join(dir, 'big'), context(), data.length);
    const first = await file.next(100_000);
    assert.ok(first.status === 'part' && !first.eof);
    await pool.close();
    await assert.rejects(file.next(100_000), /blob pool thread/);
    await file.close();
  });

  test('a chunk the filter wrongly calls known is read again and stored', async () => {
    const work = await tempDir('file-work-filter');
    try {
      const source = join(work, 'src');
      await mkdir(join(source, 'd'), { recursive: true });
      await writeFile(join(source, 'big'), data);
      await writeFile(join(source, 'd', 'small'), 'small and known to nobody\n');
      const repo = await newRepository(join(work, 'vault'));
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      // Every chunk of the source, as the vault's own chunker cuts it: the filter claims all of them.
      const claimed: string[] = [];
      for (const [path, size] of [
        [join(source, 'big'), data.length],
        [join(source, 'd', 'small'), 26],
      ] as const) {
        const own = {
          key: ctx.key,
          gear: ctx.gear,
          chunker: ctx.config.chunker,
          compressionLevel: 3,
          known: context().known,
        };
        claimed.push(...chunksOf(readAll(path, own, size, 1 << 20)).map((c) => c.id));
      }
      const result = await runBackup(
        ctx,
        { sourcePath: source },
        { knownBlobs: KnownBlobFilter.build(claimed, claimed.length) },
      );
      assert.deepEqual(result.stats.warnings, []);
      assert.equal(result.stats.blobsNew >= claimed.length, true, 'every claimed chunk was stored anyway');
      await repo.commitSnapshot(result.snapshotId);
      const target = join(work, 'restored');
      await repo.restore({ snapshotId: result.snapshotId, target });
      assert.equal(diffTrees(source, target), '');
      const report = await repo.check({ readData: true });
      assert.deepEqual(report.issues, []);
      assert.ok(report.ok);
    } finally {
      await removeDir(work);
    }
  });
});
