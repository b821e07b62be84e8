/**
 * The machine's physical ceilings for a backup engine, measured on one core in this process:
 * SHA-256 and AES-256-GCM through node:crypto (OpenSSL), zstd level 3 through zstd-napi (what
 * src/engine/pack/blob-codec.ts uses) over every byte of the real dataset, and coffer's FastCDC
 * chunker (its addon and its JavaScript loop) for comparison. Blocks are 1 MiB, coffer's average
 * chunk size. The same cipher through coffer's addon (native/aes-gcm), which seals into a buffer
 * it is given, shows what node:crypto's fresh output buffers cost.
 *
 * Why zstd over the whole dataset: on a 128 MiB sample (up to 8 MiB of every k-th file) it ran
 * at 275 MB/s, on the whole large tree at 170-190 MB/s, because the sample left out most of the
 * tree's few very large files, and a floor estimated from the sample was a third too low.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import zstd from 'zstd-napi';
import zbind from 'zstd-napi/binding.js';
import { CutPointFinder, DEFAULT_CHUNKER_PARAMS, gearTableFromSeed } from '../src/engine/chunker/fastcdc.js';
import { nativeFastCdc } from '../src/engine/chunker/native-fastcdc.js';
import { nativeAesGcm } from '../src/engine/crypto/native-aes-gcm.js';
import type { Manifest } from './engine-datasets.js';

export interface Ceiling {
  what: string;
  /** Bytes per second of input. */
  rate: number;
  note: string;
}

const BLOCK = 1024 * 1024;

/** Runs `fn` over the blocks repeatedly for at least `minMs`; returns bytes per second. */
function rateOf(blocks: Buffer[], fn: (b: Buffer) => void, minMs = 1500): number {
  for (const b of blocks.slice(0, 4)) fn(b); // warm up (JIT, OpenSSL init)
  let bytes = 0;
  const started = performance.now();
  let elapsed: number;
  do {
    for (const b of blocks) {
      fn(b);
      bytes += b.length;
    }
    elapsed = performance.now() - started;
  } while (elapsed < minMs);
  return bytes / (elapsed / 1000);
}

/** Up to `limit` bytes of real data from every k-th file across the dataset (≤ 8 MiB each), cut in 1 MiB blocks. */
async function sampleBlocks(m: Manifest, limit: number): Promise<Buffer[]> {
  const n = Math.max(1, m.regular.length);
  const capped = m.regular.reduce((sum, f) => sum + Math.min(f.size, 8 * BLOCK), 0) / n;
  const k = Math.max(1, Math.floor(n / Math.max(1, limit / Math.max(1, capped))));
  const parts: Buffer[] = [];
  let have = 0;
  for (let i = 0; i < m.regular.length && have < limit; i += k) {
    const f = m.regular[i]!;
    const want = Math.min(f.size, limit - have, 8 * BLOCK);
    if (want === 0) continue;
    const fh = await open(join(m.root, f.path), 'r');
    try {
      const b = Buffer.alloc(want);
      await fh.read(b, 0, want, 0);
      parts.push(b);
      have += want;
    } finally {
      await fh.close();
    }
  }
  const all = Buffer.concat(parts);
  const blocks: Buffer[] = [];
  for (let o = 0; o + BLOCK <= all.length; o += BLOCK) blocks.push(all.subarray(o, o + BLOCK));
  return blocks;
}

export async function measureCeilings(m: Manifest): Promise<Ceiling[]> {
  const random = Array.from({ length: 64 }, () => randomBytes(BLOCK));
  const key = randomBytes(32);
  const out: Ceiling[] = [];
  out.push({
    what: 'SHA-256 (node:crypto)',
    rate: rateOf(random, (b) => createHash('sha256').update(b).digest()),
    note: '1 MiB blocks, one core',
  });
  const small = random.map((b) => b.subarray(0, 64 * 1024));
  out.push({
    what: 'AES-256-GCM encrypt (node:crypto), 64 KiB blocks',
    rate: rateOf(small, (b) => {
      const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
      c.update(b);
      c.final();
      c.getAuthTag();
    }),
    note: 'one core',
  });
  out.push({
    what: 'AES-256-GCM encrypt (node:crypto)',
    rate: rateOf(random, (b) => {
      const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
      c.update(b);
      c.final();
      c.getAuthTag();
    }),
    note: '1 MiB blocks, fresh nonce each, one core',
  });
  const addon = nativeAesGcm();
  if (addon) {
    const sealed = Buffer.allocUnsafe(BLOCK + 16);
    out.push({
      what: "AES-256-GCM encrypt (coffer's addon, OpenSSL)",
      rate: rateOf(random, (b) => addon.seal(key, randomBytes(12), b, sealed)),
      note: '1 MiB blocks into one reused buffer, one core',
    });
  }
  const real = await sampleBlocks(m, 128 * BLOCK);
  const whole = await overDataset(m);
  out.push({
    what: 'zstd level 3 compress (zstd-napi)',
    rate: whole.zstdRate,
    note: `every byte of the ${m.name} dataset (${(whole.bytes / 1e6).toFixed(0)} MB) in 1 MiB blocks, ratio ${whole.zstdRatio.toFixed(3)}, one core`,
  });
  const packed = real.map((b) => zstd.compress(b, { compressionLevel: 3 }));
  let outBytes = 0;
  const t0 = performance.now();
  for (let rep = 0; rep < 3; rep++) for (const p of packed) outBytes += zstd.decompress(p).length;
  out.push({
    what: 'zstd decompress (zstd-napi)',
    rate: outBytes / ((performance.now() - t0) / 1000),
    note: `output bytes per second, a ${((real.length * BLOCK) / 2 ** 20).toFixed(0)} MiB sample of the dataset`,
  });
  for (const [what, rate] of whole.chunkerRates) {
    out.push({
      what: `coffer's FastCDC chunker (${what})`,
      rate,
      note: 'not a ceiling: the code to beat; every file over the chunk minimum, read 128 KiB at a time, one core',
    });
  }
  return out;
}

/**
 * zstd level 3 over every byte of the dataset (1 MiB blocks, one reused context, as a backup
 * thread compresses), and the chunker over every file larger than its minimum chunk (the only
 * files it scans), in 128 KiB reads as file-work.ts reads: only the compress and scan calls are
 * timed, not the reads.
 */
async function overDataset(
  m: Manifest,
): Promise<{ bytes: number; zstdRate: number; zstdRatio: number; chunkerRates: [string, number][] }> {
  const cctx = new zbind.CCtx();
  const block = Buffer.allocUnsafe(BLOCK);
  const packed = Buffer.allocUnsafe(zbind.compressBound(BLOCK));
  const gear = gearTableFromSeed(randomBytes(32));
  const finders: [string, boolean][] = [['JavaScript', false]];
  if (nativeFastCdc()) finders.unshift(['addon', true]);
  const chunkMs = new Map<string, number>();
  let bytes = 0;
  let outBytes = 0;
  let zstdMs = 0;
  let chunkedBytes = 0;
  for (const f of m.regular) {
    const fh = await open(join(m.root, f.path), 'r');
    try {
      const scan = f.size > DEFAULT_CHUNKER_PARAMS.minSize;
      const runs = finders.map(([what, native]) => ({
        what,
        finder: new CutPointFinder(gear, DEFAULT_CHUNKER_PARAMS, native),
      }));
      for (;;) {
        const { bytesRead } = await fh.read(block, 0, BLOCK, null);
        if (bytesRead === 0) break;
        const data = block.subarray(0, bytesRead);
        const t = performance.now();
        outBytes += cctx.compress(packed, data, 3);
        zstdMs += performance.now() - t;
        bytes += bytesRead;
        if (!scan) continue;
        chunkedBytes += bytesRead;
        for (const run of runs) {
          const t1 = performance.now();
          for (let o = 0; o < bytesRead; o += 128 * 1024) {
            const piece = data.subarray(o, Math.min(bytesRead, o + 128 * 1024));
            let pos = 0;
            while (pos < piece.length) {
              const at = run.finder.findCut(piece, pos);
              if (at < 0) break;
              pos = at;
            }
          }
          chunkMs.set(run.what, (chunkMs.get(run.what) ?? 0) + performance.now() - t1);
        }
      }
    } finally {
      await fh.close();
    }
  }
  return {
    bytes,
    zstdRate: bytes / (zstdMs / 1000),
    zstdRatio: outBytes / Math.max(1, bytes),
    chunkerRates: finders.map(([what]) => [what, chunkedBytes / ((chunkMs.get(what) ?? 1) / 1000)]),
  };
}
