/**
 * Small files read in batches (file-work.ts readSmallFiles, archiver.ts readSmallFilesAhead):
 * one pool request reads, chunks and seals up to 32 small files; what a batch cannot finish (a
 * file that grew past a part, or vanished) is read again or skipped exactly as a file read on its
 * own would be, and a backup that fails or is cancelled leaves no batch running behind it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, readdirSync, truncateSync, unlinkSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { runBackup } from '../../src/engine/archiver/archiver.js';
import { gearTableFromSeed } from '../../src/engine/chunker/fastcdc.js';
import { decodeBlob } from '../../src/engine/pack/blob-codec.js';
import { BlobPool, sharedBlobPool } from '../../src/engine/parallel/blob-pool.js';
import {
  PART_BYTES,
  type ReadContext,
  readSmallFiles,
  type SmallFileOutcome,
  startsCompressed,
  type SmallFileRead,
} from '../../src/engine/parallel/file-work.js';
import { KnownBlobFilter } from '../../src/engine/parallel/known-filter.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { commitAndRestore, newRepository, removeDir, tempDir, TEST_CHUNKER } from './source-tree-fixture.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const key = randomBytes(32);
const readContext: ReadContext = {
  key,
  gear: gearTableFromSeed(randomBytes(32)),
  chunker: TEST_CHUNKER,
  compressionLevel: 3,
  known: KnownBlobFilter.build([], 0).table,
};

/** Every file under `dir`, relative, sorted. */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

/** Counts the shared pool's small-file batches and single-file reads while `body` runs. */
async function countingPoolCalls<T>(
  body: () => Promise<T>,
): Promise<{ value: T; batches: SmallFileRead[][]; singleReads: string[]; maxBatchesInFlight: number }> {
  const pool = sharedBlobPool();
  const batches: SmallFileRead[][] = [];
  const singleReads: string[] = [];
  let inFlight = 0;
  let maxBatchesInFlight = 0;
  const readBatch = pool.readSmallFiles.bind(pool);
  const openFile = pool.openFile.bind(pool);
  pool.readSmallFiles = async (files, context) => {
    batches.push(files);
    maxBatchesInFlight = Math.max(maxBatchesInFlight, ++inFlight);
    try {
      return await readBatch(files, context);
    } finally {
      inFlight--;
    }
  };
  pool.openFile = (path, context, expectedSize) => {
    singleReads.push(path);
    return openFile(path, context, expectedSize);
  };
  try {
    const value = await body();
    return { value, batches, singleReads, maxBatchesInFlight };
  } finally {
    pool.readSmallFiles = readBatch;
    pool.openFile = openFile;
  }
}

describe('small files read in batches', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('small-batches');
  });
  after(() => removeDir(dir));

  test('a batch gives each file its whole content, an open error, or “grew”, in order', async () => {
    const text = Buffer.from('a small text file\n'.repeat(40));
    const random = randomBytes(9000);
    await writeFile(join(dir, 'text'), text);
    await writeFile(join(dir, 'random'), random);
    await writeFile(join(dir, 'empty'), '');
    await symlink('text', join(dir, 'link'));
    // Listed small, but past a whole part by the time it is read.
    await writeFile(join(dir, 'grown'), randomBytes(PART_BYTES + 1));
    const files: SmallFileRead[] = [
      { path: join(dir, 'text'), expectedSize: text.length },
      { path: join(dir, 'missing'), expectedSize: 10 },
      { path: join(dir, 'random'), expectedSize: random.length },
      { path: join(dir, 'link'), expectedSize: 4 },
      { path: join(dir, 'grown'), expectedSize: 100 },
      { path: join(dir, 'empty'), expectedSize: 0 },
    ];
    const check = (outcomes: SmallFileOutcome[], where: string) => {
      assert.deepEqual(
        outcomes.map((o) => o.status),
        ['part', 'error', 'part', 'error', 'grew', 'part'],
        where,
      );
      for (const [i, content] of [
        [0, text],
        [2, random],
      ] as const) {
        const o = outcomes[i]!;
        assert.ok(o.status === 'part' && o.eof && o.bytesRead === content.length, where);
        const [chunk, ...rest] = o.chunks;
        assert.equal(rest.length, 0, 'a small file is one chunk');
        assert.ok(chunk?.kind === 'sealed' && chunk.id === sha(content), where);
        const ref = { id: chunk.id, compressed: chunk.compressed, uncompressedLength: content.length };
        assert.ok(decodeBlob(key, chunk.sealed, ref, 'p').equals(content), where);
      }
      assert.deepEqual(outcomes[1], { status: 'error', stage: 'open', errno: 'ENOENT', position: 0 });
      assert.ok(outcomes[3]!.status === 'error' && outcomes[3]!.errno === 'ELOOP', 'O_NOFOLLOW');
      assert.deepEqual(outcomes[5], { status: 'part', chunks: [], bytesRead: 0, eof: true });
    };
    check(readSmallFiles(files, readContext), 'on the calling thread');
    for (const [size, lane] of [
      [0, false],
      [2, false],
      [2, true],
    ] as const) {
      const pool = new BlobPool(size, lane);
      try {
        const how = `a pool of ${size} threads${lane ? ', one the main thread’s lane' : ''}`;
        // As many batches as threads at once, so that each thread (or lane) reads one.
        const batches = await Promise.all([1, 2].map(() => pool.readSmallFiles(files, readContext)));
        for (const outcomes of batches) check(outcomes, `through ${how}`);
        // A second batch on the same threads: the context is sent once and then named.
        check(await pool.readSmallFiles(files, readContext), `again, ${how}`);
        await pool.releaseContext(readContext);
      } finally {
        await pool.close();
      }
    }
  });

  test('a small file in a compressed format is stored as it is; any other is compressed', async () => {
    const formats = join(dir, 'formats');
    await mkdir(formats, { recursive: true });
    const text = Buffer.from('compressible text, said again and again. '.repeat(100));
    // Compressible bytes behind a gzip or PNG header are still stored uncompressed: the header decides.
    const gz = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), text]);
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), text]);
    // A zip's members may be stored uncompressed: a zip is tried like any file.
    const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), text]);
    const real = gzipSync(randomBytes(5000));
    const cases: [string, Buffer, boolean][] = [
      ['text', text, true],
      ['gz', gz, false],
      ['png', png, false],
      ['zip', zip, true],
      ['real.gz', real, false],
    ];
    for (const [name, data] of cases) await writeFile(join(formats, name), data);
    for (const [name, data] of [
      ['gz', gz],
      ['png', png],
      ['real.gz', real],
    ] as const) {
      assert.equal(startsCompressed(data), true, name);
    }
    assert.equal(startsCompressed(text), false);
    assert.equal(startsCompressed(Buffer.from([0x1f, 0x8b])), false, 'too short to tell');
    const outcomes = readSmallFiles(
      cases.map(([name, data]) => ({ path: join(formats, name), expectedSize: data.length })),
      readContext,
    );
    outcomes.forEach((o, i) => {
      const [name, data, compressed] = cases[i]!;
      assert.ok(o.status === 'part' && o.chunks.length === 1, name);
      const chunk = o.chunks[0]!;
      assert.ok(chunk.kind === 'sealed', name);
      assert.equal(chunk.compressed, compressed, name);
      const ref = { id: chunk.id, compressed: chunk.compressed, uncompressedLength: data.length };
      assert.ok(decodeBlob(key, chunk.sealed, ref, 'p').equals(data), name);
    });
  });

  test('a tree of many small directories has several batches in flight, read ahead of the walk', async () => {
    const work = await tempDir('small-batches-ahead');
    try {
      const source = join(work, 'src');
      // 40 directories of 3 files: one batch each. The walk finishes one directory before it
      // goes into the next, so batches started only as it got there were one at a time.
      for (let d = 0; d < 40; d++) {
        const sub = join(source, `d-${String(d).padStart(2, '0')}`, 'inner');
        await mkdir(sub, { recursive: true });
        for (let f = 0; f < 3; f++) await writeFile(join(sub, `f-${f}`), `dir ${d} file ${f}\n`.repeat(30));
      }
      const repo = await newRepository(join(work, 'vault'));
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      const seen: string[] = [];
      const first = await countingPoolCalls(() =>
        runBackup(
          ctx,
          { sourcePath: source },
          { onDirectory: (rel, phase) => phase === 'open' && seen.push(rel) },
        ),
      );
      assert.deepEqual(first.value.stats.warnings, []);
      assert.equal(first.value.stats.filesNew, 120);
      assert.equal(first.batches.length, 40, 'one batch per directory');
      assert.equal(new Set(first.batches.flat().map((f) => f.path)).size, 120, 'each file read once');
      assert.ok(first.maxBatchesInFlight > 1, `${first.maxBatchesInFlight} batch(es) in flight at most`);
      assert.ok(first.maxBatchesInFlight <= 4);
      // Queued in the walk's order: each directory's batch after those of the directories before it.
      const order = first.batches.map((b) => b[0]!.path.slice(source.length + 1).split('/')[0]);
      assert.deepEqual(order, [...order].sort());
      assert.equal(seen.length, 81);
      await commitAndRestore(repo, first.value.snapshotId, source, join(work, 'restored'));
    } finally {
      await removeDir(work);
    }
  });

  test('subdirectories a listing did not bring are listed together when the walk reaches them', async () => {
    const work = await tempDir('small-batches-listed-later');
    const pool = sharedBlobPool();
    const scanDir = pool.scanDir.bind(pool);
    const scanSubdirs = pool.scanSubdirs.bind(pool);
    const scans: string[] = [];
    const subdirScans: number[] = [];
    try {
      const source = join(work, 'src');
      // More subdirectories than one listing brings ahead (4,096 entries): the root's own entries
      // use it all up, so none of them comes with it.
      for (let d = 0; d < 4200; d++) {
        const sub = join(source, `d-${String(d).padStart(4, '0')}`);
        await mkdir(sub, { recursive: true });
        if (d % 100 === 0)
          for (let f = 0; f < 2; f++) await writeFile(join(sub, `f-${f}`), `dir ${d} file ${f}\n`);
      }
      pool.scanDir = (path, ahead) => {
        scans.push(path);
        return scanDir(path, ahead);
      };
      pool.scanSubdirs = (path, names, ahead) => {
        subdirScans.push(names.length);
        return scanSubdirs(path, names, ahead);
      };
      const repo = await newRepository(join(work, 'vault'));
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      const seen: string[] = [];
      const result = await runBackup(
        ctx,
        { sourcePath: source },
        { onDirectory: (rel, phase) => phase === 'open' && seen.push(rel) },
      );
      assert.deepEqual(result.stats.warnings, []);
      assert.equal(result.stats.filesNew, 84);
      assert.equal(seen.length, 4201);
      assert.deepEqual(scans, [source], 'only the root is listed on its own');
      // About 4,096 entries per request, each subdirectory one or three: 4,200 in two requests.
      assert.ok(subdirScans.length >= 1 && subdirScans.length <= 3, `${subdirScans.length} requests`);
      assert.equal(subdirScans[0], 4096, 'the first request names the next 4,096 subdirectories');
      await commitAndRestore(repo, result.snapshotId, source, join(work, 'restored'));
    } finally {
      pool.scanDir = scanDir;
      pool.scanSubdirs = scanSubdirs;
      await removeDir(work);
    }
  });

  test('a backup reads a directory’s small files in batches of at most 32 and 1 MiB', async () => {
    const work = await tempDir('small-batches-backup');
    try {
      const source = join(work, 'src');
      await mkdir(join(source, 'sub'), { recursive: true });
      for (let i = 0; i < 100; i++)
        await writeFile(join(source, `f-${String(i).padStart(3, '0')}`), `file ${i}\n`.repeat(20 + i));
      // Larger small files: bytes, not the count, close these batches.
      for (let i = 0; i < 6; i++) await writeFile(join(source, 'sub', `s-${i}`), randomBytes(15 * 1024));
      await writeFile(join(source, 'big'), randomBytes(300 * 1024));
      const repo = await newRepository(join(work, 'vault'));
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;

      const first = await countingPoolCalls(() => runBackup(ctx, { sourcePath: source }));
      assert.deepEqual(first.value.stats.warnings, []);
      assert.equal(first.value.stats.filesNew, 107);
      const batched = first.batches.flat().map((f) => f.path);
      assert.equal(batched.length, 106, 'every small file went in a batch');
      assert.equal(new Set(batched).size, 106, 'and in one batch only');
      assert.ok(first.batches.every((b) => b.length <= 32));
      assert.ok(first.batches.every((b) => b.reduce((n, f) => n + f.expectedSize, 0) <= 1024 * 1024));
      assert.equal(first.batches.length, 4 + 1, 'root: 32+32+32+4 files; sub: 6');
      assert.deepEqual(first.singleReads, [join(source, 'big')], 'only the large file is read alone');
      assert.ok(first.maxBatchesInFlight <= 4);
      const target = join(work, 'restored');
      await commitAndRestore(repo, first.value.snapshotId, source, target);

      // With a parent: unchanged files are not read; changed ones are, in one batch.
      for (const name of ['f-003', 'f-050', 'f-099'])
        await writeFile(join(source, name), `changed ${name}\n`);
      const second = await countingPoolCalls(() =>
        runBackup(ctx, { sourcePath: source, parentSnapshotId: first.value.snapshotId }),
      );
      assert.equal(second.value.stats.filesChanged, 3);
      assert.equal(second.value.stats.filesUnmodified, 104);
      assert.deepEqual(
        second.batches.map((b) => b.map((f) => f.path)),
        [['f-003', 'f-050', 'f-099'].map((n) => join(source, n))],
      );
      assert.deepEqual(second.singleReads, []);
      const target2 = join(work, 'restored-2');
      await commitAndRestore(repo, second.value.snapshotId, source, target2);
      const report = await repo.check({ readData: true });
      assert.deepEqual(report.issues, []);
    } finally {
      await removeDir(work);
    }
  });

  test('files that grow, shrink or vanish after the listing are backed up as they are read', async () => {
    const work = await tempDir('small-batches-changing');
    try {
      const source = join(work, 'src');
      await mkdir(source);
      for (const name of ['grows', 'shrinks', 'vanishes', 'stays'])
        await writeFile(join(source, name), `${name}\n`.repeat(100));
      const grown = randomBytes(PART_BYTES + 200 * 1024);
      const repo = await newRepository(join(work, 'vault'));
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      const run = await countingPoolCalls(() =>
        runBackup(
          ctx,
          { sourcePath: source },
          {
            // Between the listing (which sized them small) and the batch that reads them.
            onDirectory: (rel, phase) => {
              if (rel !== '' || phase !== 'open') return;
              appendFileSync(join(source, 'grows'), grown);
              truncateSync(join(source, 'shrinks'), 3);
              unlinkSync(join(source, 'vanishes'));
            },
          },
        ),
      );
      assert.deepEqual(run.value.stats.warnings, ['vanishes: cannot open (ENOENT)']);
      assert.deepEqual(run.singleReads, [join(source, 'grows')], 'the grown file is read again on its own');
      const target = join(work, 'restored');
      await commitAndRestore(repo, run.value.snapshotId, source, target);
      assert.equal((await readFile(join(target, 'grows'))).length, 100 * 6 + grown.length);
      assert.equal((await readFile(join(target, 'shrinks'))).toString(), 'shr');
      const report = await repo.check({ readData: true });
      assert.deepEqual(report.issues, []);
    } finally {
      await removeDir(work);
    }
  });

  test('a cancelled backup returns only once no batch is left reading', async () => {
    const work = await tempDir('small-batches-cancel');
    try {
      const source = join(work, 'src');
      await mkdir(join(source, 'zz-sub'), { recursive: true });
      // Many batches queued for the root when its subdirectory is opened (and the backup cancelled).
      for (let i = 0; i < 600; i++) await writeFile(join(source, `f-${i}`), randomBytes(2000 + i));
      await writeFile(join(source, 'zz-sub', 'inside'), 'x');
      const repo = await newRepository(join(work, 'vault'));
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      const controller = new AbortController();
      let inFlightAtReturn = -1;
      let inFlight = 0;
      const pool = sharedBlobPool();
      const readBatch = pool.readSmallFiles.bind(pool);
      let calls = 0;
      pool.readSmallFiles = async (files, context) => {
        inFlight++;
        const late = 40 * ++calls;
        try {
          const outcomes = await readBatch(files, context);
          // Each later than the last, as on a loaded machine: when the walk stops waiting (for
          // the first batch's files), the others are still running.
          await setTimeout(late);
          return outcomes;
        } finally {
          inFlight--;
        }
      };
      try {
        await assert.rejects(
          runBackup(
            ctx,
            { sourcePath: source, signal: controller.signal },
            { onDirectory: (rel, phase) => rel === 'zz-sub' && phase === 'open' && controller.abort() },
          ).finally(() => (inFlightAtReturn = inFlight)),
          (e) => isCofferError(e, 'JobCancelled'),
        );
      } finally {
        pool.readSmallFiles = readBatch;
      }
      assert.equal(inFlightAtReturn, 0, 'no batch still reading when the backup returned');
      // Nothing is written after the backup returned: every pack stored is in an index.
      const vaultFiles = listFiles(join(work, 'vault'));
      await setTimeout(300);
      assert.deepEqual(listFiles(join(work, 'vault')), vaultFiles);
      const afterCancel = await repo.check({ readData: true });
      assert.deepEqual(afterCancel.issues, []);
      assert.deepEqual(await repo.listSnapshots({ includePending: true }), []);
      // The vault is fine and the next backup is whole.
      const again = await runBackup(ctx, { sourcePath: source });
      assert.deepEqual(again.stats.warnings, []);
      const target = join(work, 'restored');
      await commitAndRestore(repo, again.snapshotId, source, target);
      const report = await repo.check({ readData: true });
      assert.ok(report.ok, JSON.stringify(report.issues));
    } finally {
      await removeDir(work);
    }
  });
});
