/**
 * The machine's physical ceilings for a backup engine, measured on one core in this process:
 * SHA-256 and AES-256-GCM through node:crypto (OpenSSL), zstd level 3 through zstd-napi (what
 * src/engine/pack/blob-codec.ts uses) on a sample of the real dataset, and coffer's current
 * FastCDC chunker (JavaScript) for comparison. Blocks are 1 MiB, coffer's average chunk size.
 * The same cipher through coffer's addon (native/aes-gcm), which seals into a buffer it is given,
 * shows what node:crypto's fresh output buffers cost.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import zstd from 'zstd-napi';
import {
  DEFAULT_CHUNKER_PARAMS,
  gearTableFromSeed,
  StreamingChunker,
} from '../src/engine/chunker/fastcdc.js';
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
  const realBytes = real.length * BLOCK;
  let packedBytes = 0;
  const packed = real.map((b) => {
    const p = zstd.compress(b, { compressionLevel: 3 });
    packedBytes += p.length;
    return p;
  });
  out.push({
    what: 'zstd level 3 compress (zstd-napi)',
    rate: rateOf(real, (b) => zstd.compress(b, { compressionLevel: 3 })),
    note: `${(realBytes / 2 ** 20).toFixed(0)} MiB sample of the ${m.name} dataset, ratio ${(packedBytes / realBytes).toFixed(3)}, one core`,
  });
  let outBytes = 0;
  const t0 = performance.now();
  for (let rep = 0; rep < 3; rep++) for (const p of packed) outBytes += zstd.decompress(p).length;
  out.push({
    what: 'zstd decompress (zstd-napi)',
    rate: outBytes / ((performance.now() - t0) / 1000),
    note: 'output bytes per second, same sample',
  });
  const gear = gearTableFromSeed(randomBytes(32));
  out.push({
    what: "coffer's FastCDC chunker (JavaScript, current)",
    rate: rateOf(real, (b) => {
      const c = new StreamingChunker(gear, DEFAULT_CHUNKER_PARAMS);
      c.push(b);
      c.finish();
    }),
    note: 'not a ceiling: the code to beat; same sample, one core',
  });
  return out;
}
