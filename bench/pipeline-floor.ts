/**
 * The floor of a first backup built from coffer's own primitives on this machine, measured beside
 * restic and coffer itself in the same run. Why: docs/benchmarks.md estimated that floor from
 * profiles (the CPU of zstd, SHA-256, reading and writing, spread over the cores); this measures
 * it, so the share of coffer's time that is its own overhead (the walk, messages between threads,
 * the main thread's bookkeeping, start-up) is a measured figure and not an estimate.
 *
 *   npm run bench:floor -- [--rounds 3] [--tree large|small|both] [--dir DIR] [--threads N]
 *
 * The floor: one worker thread per core takes the dataset's files from a shared counter (largest
 * first, so no thread is left with a large file at the end) and does for each exactly what a
 * first backup's data path must: lstat, open, read, FastCDC (the addon), SHA-256 of every chunk,
 * zstd at the vault's default level (the same contexts and settings as blob-codec.ts, and the same
 * rule for what stays uncompressed), AES-256-GCM, and appending the sealed blob to a pack file of
 * its own, which is hashed as it is written and named by that hash at 16 MiB. A chunk is stored
 * once: the threads claim chunks in a table they share (see claim). Left out: the walk's readdir,
 * tree blobs, the index and the catalog, and process start-up. Start-up is measured on its own:
 * `coffer backup` of an empty directory (node, the bundle, the key derivation, the catalog and the
 * job), and "floor + start-up" is the figure to hold against restic.
 *
 * Each round: the floor, coffer's first backup and restic's first backup of each tree, in an order
 * that rotates by one each round, warm cache (every file read before each timed run, `sync`
 * before it). Needs the datasets of `npm run bench:engine -- --prepare --keep-datasets`.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { threadRecycler } from '../src/engine/buffer-recycler.js';
import {
  DEFAULT_CHUNKER_PARAMS,
  gearTableFromSeed,
  StreamingChunker,
} from '../src/engine/chunker/fastcdc.js';
import { encodeBlob } from '../src/engine/pack/blob-codec.js';
import { DEFAULT_PACK_SIZE } from '../src/engine/pack/pack-writer.js';
import { startsCompressed } from '../src/engine/parallel/file-work.js';
import { DEFAULT_COMPRESSION_LEVEL } from '../src/engine/repository/repository-config.js';
import { buildDataset, type Manifest, readThroughput, type TreeName } from './engine-datasets.js';
import { run, type Measure } from './engine-run.js';
import { makeRepo } from './engine-tools.js';
import { median } from './lib/stats.js';

/** Bytes read at a time from a large file (file-work.ts reads 1 MiB at a time too). */
const READ_BYTES = 1024 * 1024;

interface FloorJob {
  /** Absolute paths and sizes, largest first. */
  files: { path: string; size: number }[];
  /** Int32Array over it: [0] the next file to take. */
  next: SharedArrayBuffer;
  /** BigInt64Array over it: the chunks claimed by some thread (see claim). */
  claimed: SharedArrayBuffer;
  packDir: string;
  /** Buffers arrive in a worker as plain Uint8Arrays (structured clone). */
  key: Uint8Array;
  gearSeed: Uint8Array;
}

interface FloorResult {
  chunks: number;
  bytesIn: number;
  bytesStored: number;
  packs: number;
}

/**
 * Claims a chunk for the calling thread, by the first 8 bytes of its SHA-256, in a table all the
 * threads share (open addressing, compare-and-swap): true for the first thread to meet it. A
 * backup's index does this exactly; for a measurement, 64 bits are as good.
 */
function claim(table: BigInt64Array, digest: Buffer): boolean {
  const key = digest.readBigInt64LE(0) || 1n;
  const mask = table.length - 1;
  for (let slot = digest.readUInt32LE(8) & mask; ; slot = (slot + 1) & mask) {
    const was = Atomics.compareExchange(table, slot, 0n, key);
    if (was === 0n) return true;
    if (was === key) return false;
  }
}

/** One thread's share of the floor: files taken from the shared counter until none are left. */
function floorWork(job: FloorJob): FloorResult {
  const next = new Int32Array(job.next);
  const gear = gearTableFromSeed(job.gearSeed);
  const claimed = new BigInt64Array(job.claimed);
  const key = Buffer.from(job.key);
  const result: FloorResult = { chunks: 0, bytesIn: 0, bytesStored: 0, packs: 0 };
  let pack: { fd: number; path: string; hash: Hash; bytes: number } | null = null;
  const closePack = (): void => {
    if (!pack) return;
    closeSync(pack.fd);
    renameSync(pack.path, join(job.packDir, pack.hash.digest('hex')));
    result.packs++;
    pack = null;
  };
  // `whole`: a small file read whole, which is stored as it is when its format is a compressed
  // one (file-work.ts does the same); a large file's chunks are always offered to zstd.
  const store = (plain: Buffer, whole: boolean): void => {
    result.chunks++;
    const digest = createHash('sha256').update(plain).digest();
    if (!claim(claimed, digest)) return;
    const level = whole && startsCompressed(plain) ? 0 : DEFAULT_COMPRESSION_LEVEL;
    const { sealed } = encodeBlob(key, 'data', plain, digest.toString('hex'), level);
    if (!pack) {
      const path = join(job.packDir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
      pack = { fd: openSync(path, 'wx'), path, hash: createHash('sha256'), bytes: 0 };
    }
    writeSync(pack.fd, sealed, 0, sealed.length, pack.bytes);
    pack.hash.update(sealed);
    pack.bytes += sealed.length;
    result.bytesStored += sealed.length;
    threadRecycler.give(sealed.buffer as ArrayBuffer);
    if (pack.bytes >= DEFAULT_PACK_SIZE) closePack();
  };
  for (let i = Atomics.add(next, 0, 1); i < job.files.length; i = Atomics.add(next, 0, 1)) {
    const f = job.files[i]!;
    lstatSync(f.path, { bigint: true });
    const fd = openSync(f.path, 'r');
    try {
      if (f.size <= DEFAULT_CHUNKER_PARAMS.minSize) {
        const b = Buffer.allocUnsafe(f.size);
        const n = f.size === 0 ? 0 : readSync(fd, b, 0, f.size, 0);
        result.bytesIn += n;
        store(b.subarray(0, n), true);
        continue;
      }
      // The chunker keeps the buffers it was given, so every read gets a new one.
      const chunker = new StreamingChunker(gear, DEFAULT_CHUNKER_PARAMS);
      for (let at = 0; ;) {
        const b = Buffer.allocUnsafeSlow(READ_BYTES);
        const n = readSync(fd, b, 0, READ_BYTES, at);
        if (n === 0) break;
        at += n;
        result.bytesIn += n;
        for (const c of chunker.push(b.subarray(0, n))) store(c, false);
      }
      const last = chunker.finish();
      if (last) store(last, false);
    } finally {
      closeSync(fd);
    }
  }
  closePack();
  return result;
}

if (!isMainThread) {
  const job = workerData as FloorJob;
  parentPort!.once('message', () => {
    parentPort!.postMessage(floorWork(job));
  });
  parentPort!.postMessage('ready');
} else {
  await main();
}

interface FloorMeasure {
  wallS: number;
  cpuS: number;
  result: FloorResult;
}

/** Starts the threads, waits until each has loaded its code, then times the work alone. */
async function measureFloor(m: Manifest, packDir: string, threads: number): Promise<FloorMeasure> {
  mkdirSync(packDir, { recursive: true });
  const files = m.regular
    .map((f) => ({ path: join(m.root, f.path), size: f.size }))
    .sort((a, b) => b.size - a.size);
  const job: FloorJob = {
    files,
    next: new SharedArrayBuffer(4),
    // Four times the chunks there can be, rounded up to a power of two: probes stay short.
    claimed: new SharedArrayBuffer(
      8 * 2 ** Math.ceil(Math.log2(4 * (m.regular.length + m.bytes / (256 * 1024)))),
    ),
    packDir,
    key: randomBytes(32),
    gearSeed: randomBytes(32),
  };
  const self = fileURLToPath(import.meta.url);
  const workers = Array.from({ length: threads }, () => new Worker(self, { workerData: job }));
  await Promise.all(workers.map((w) => new Promise<void>((ok) => w.once('message', () => ok()))));
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const results = await Promise.all(
    workers.map(
      (w) =>
        new Promise<FloorResult>((ok, fail) => {
          w.once('message', (r: FloorResult) => ok(r));
          w.once('error', fail);
          w.postMessage('go');
        }),
    ),
  );
  const wallS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(workers.map((w) => w.terminate()));
  const result = results.reduce((a, r) => ({
    chunks: a.chunks + r.chunks,
    bytesIn: a.bytesIn + r.bytesIn,
    bytesStored: a.bytesStored + r.bytesStored,
    packs: a.packs + r.packs,
  }));
  if (result.bytesIn !== m.bytes)
    throw new Error(`floor read ${result.bytesIn} bytes of ${m.name}'s ${m.bytes}`);
  return { wallS, cpuS: (cpu.user + cpu.system) / 1e6, result };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      tree: { type: 'string', default: 'both' },
      dir: { type: 'string', default: '' },
      threads: { type: 'string', default: String(availableParallelism()) },
    },
  });
  const rounds = Number(values.rounds);
  const threads = Number(values.threads);
  const trees: TreeName[] = values.tree === 'both' ? ['large', 'small'] : [values.tree as TreeName];
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(threads) || threads < 1) {
    throw new Error(
      'usage: pipeline-floor.js [--rounds N>=1] [--tree large|small|both] [--dir DIR] [--threads N]',
    );
  }
  if (!trees.every((t) => t === 'large' || t === 'small')) throw new Error('--tree is large, small or both');
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
  const dataDir = join(repoRoot, 'bench', '.data', 'engine');
  const base = values.dir || join(dataDir, 'floor-run');
  mkdirSync(base, { recursive: true });
  const log = (s: string): void => console.error(s);

  const manifests = new Map<TreeName, Manifest>();
  for (const t of trees) manifests.set(t, await buildDataset(t, 1, dataDir, log));

  const sync = () => run('sync', []);
  type Kind = 'floor' | 'coffer' | 'restic';
  const kinds: Kind[] = ['floor', 'coffer', 'restic'];
  const times = new Map<string, number[]>();
  const cpus = new Map<string, number[]>();
  const note = (k: string, wall: number, cpu: number): void => {
    times.set(k, [...(times.get(k) ?? []), wall]);
    cpus.set(k, [...(cpus.get(k) ?? []), cpu]);
  };
  const cpuOf = (x: Measure): number => x.userS + x.sysS;
  const stored = new Map<TreeName, number>();

  for (let round = 0; round < rounds; round++) {
    // Fixed cost of a coffer backup: an empty directory, into a fresh vault.
    {
      const work = await mkdtemp(join(base, 'startup-'));
      const empty = join(work, 'empty');
      mkdirSync(empty);
      const repo = makeRepo('coffer', { work, tree: 'empty', source: empty, timeFile: join(work, 'time') });
      await repo.init();
      await sync();
      const x = await repo.backup(`r${round}`);
      note('startup', x.wallS, cpuOf(x));
      await rm(work, { recursive: true, force: true });
    }
    for (const tree of trees) {
      const m = manifests.get(tree)!;
      const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]!);
      for (const kind of order) {
        const work = await mkdtemp(join(base, `${kind}-${tree}-`));
        if (kind === 'floor') {
          readThroughput(m); // warm cache
          await sync();
          const f = await measureFloor(m, join(work, 'packs'), threads);
          note(`floor-${tree}`, f.wallS, f.cpuS);
          stored.set(tree, f.result.bytesStored);
          log(
            `r${round + 1} ${tree} floor: ${f.wallS.toFixed(2)} s, CPU ${f.cpuS.toFixed(2)} s, ${f.result.chunks} chunks, ${(f.result.bytesStored / 1e6).toFixed(0)} MB stored in ${f.result.packs} packs`,
          );
        } else {
          const repo = makeRepo(kind, { work, tree, source: m.root, timeFile: join(work, 'time') });
          await repo.init();
          readThroughput(m); // warm cache
          await sync();
          const x = await repo.backup(`r${round}`);
          note(`${kind}-${tree}`, x.wallS, cpuOf(x));
          log(`r${round + 1} ${tree} ${kind}: ${x.wallS.toFixed(2)} s, CPU ${cpuOf(x).toFixed(2)} s`);
        }
        await rm(work, { recursive: true, force: true });
      }
    }
  }

  const med = (k: string): number => median(times.get(k) ?? [NaN]);
  const medCpu = (k: string): number => median(cpus.get(k) ?? [NaN]);
  const startup = med('startup');
  const rows = [
    `Medians of ${rounds} rounds, ${threads} threads; start-up (\`coffer backup\` of an empty directory): ${startup.toFixed(2)} s, CPU ${medCpu('startup').toFixed(2)} s.`,
    '',
    '| tree | floor | floor + start-up | coffer | restic | (floor + start-up)/restic | coffer/restic | floor CPU | coffer CPU | restic CPU |',
    '| ---- | ----- | ---------------- | ------ | ------ | ------------------------- | ------------- | --------- | ---------- | ---------- |',
  ];
  for (const tree of trees) {
    const [f, c, r] = [med(`floor-${tree}`), med(`coffer-${tree}`), med(`restic-${tree}`)];
    rows.push(
      `| ${tree} | ${f.toFixed(2)} s | ${(f + startup).toFixed(2)} s | ${c.toFixed(2)} s | ${r.toFixed(2)} s | ${((f + startup) / r).toFixed(2)}× | ${(c / r).toFixed(2)}× | ${medCpu(`floor-${tree}`).toFixed(2)} s | ${medCpu(`coffer-${tree}`).toFixed(2)} s | ${medCpu(`restic-${tree}`).toFixed(2)} s |`,
    );
  }
  for (const tree of trees)
    rows.push('', `${tree}: the floor stored ${((stored.get(tree) ?? 0) / 1e6).toFixed(0)} MB.`);
  console.log(rows.join('\n'));
}
