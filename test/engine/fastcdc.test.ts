import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  DEFAULT_CHUNKER_PARAMS,
  gearTableFromSeed,
  StreamingChunker,
  type ChunkerParams,
} from '../../src/engine/chunker/fastcdc.js';

function chunkAll(data: Buffer, gear: Int32Array, params: ChunkerParams, pieceSize: number): Buffer[] {
  const c = new StreamingChunker(gear, params);
  const out: Buffer[] = [];
  for (let o = 0; o < data.length; o += pieceSize) out.push(...c.push(data.subarray(o, o + pieceSize)));
  const last = c.finish();
  if (last) out.push(last);
  return out;
}

const SMALL: ChunkerParams = { minSize: 2048, avgSize: 8192, maxSize: 65536 };

describe('FastCDC chunker', () => {
  const gear = gearTableFromSeed(Buffer.from('fixed seed for tests'));
  const data = randomBytes(4 * 1024 * 1024);

  it('finds the same boundaries whatever the read sizes', () => {
    const a = chunkAll(data, gear, SMALL, data.length);
    const b = chunkAll(data, gear, SMALL, 1000);
    const c = chunkAll(data, gear, SMALL, 7);
    assert.deepEqual(
      a.map((x) => x.length),
      b.map((x) => x.length),
    );
    assert.deepEqual(
      a.map((x) => x.length),
      c.map((x) => x.length),
    );
    assert.ok(Buffer.concat(a).equals(data));
  });

  it('keeps chunk sizes within bounds around the average', () => {
    const chunks = chunkAll(data, gear, SMALL, 65536);
    for (const ch of chunks.slice(0, -1)) {
      assert.ok(ch.length >= SMALL.minSize && ch.length <= SMALL.maxSize, `${ch.length}`);
    }
    const avg = data.length / chunks.length;
    assert.ok(avg > SMALL.avgSize * 0.6 && avg < SMALL.avgSize * 1.6, `average ${avg}`);
  });

  it('resynchronises after an insertion (content-defined, not offset-defined)', () => {
    const before = chunkAll(data, gear, SMALL, 65536).map((c) => c.toString('base64'));
    const shifted = Buffer.concat([Buffer.from('inserted bytes'), data]);
    const afterSet = new Set(chunkAll(shifted, gear, SMALL, 65536).map((c) => c.toString('base64')));
    const shared = before.filter((c) => afterSet.has(c)).length;
    assert.ok(shared >= before.length - 3, `${shared} of ${before.length} chunks survive`);
  });

  it('depends on the per-repository seed', () => {
    const other = gearTableFromSeed(Buffer.from('another seed'));
    const a = chunkAll(data, gear, SMALL, 65536).map((x) => x.length);
    const b = chunkAll(data, other, SMALL, 65536).map((x) => x.length);
    assert.notDeepEqual(a, b);
  });

  it('cuts at maxSize on data without cut points, and measures throughput', (t) => {
    const zeros = Buffer.alloc(20 * 1024 * 1024);
    const sizes = chunkAll(zeros, gear, DEFAULT_CHUNKER_PARAMS, 4 << 20).map((c) => c.length);
    assert.ok(
      sizes
        .slice(0, -1)
        .every((s) => s === DEFAULT_CHUNKER_PARAMS.maxSize || s >= DEFAULT_CHUNKER_PARAMS.minSize),
    );

    const big = randomBytes(64 * 1024 * 1024);
    chunkAll(big, gear, DEFAULT_CHUNKER_PARAMS, 4 << 20); // warm-up for the JIT
    const started = performance.now();
    const chunks = chunkAll(big, gear, DEFAULT_CHUNKER_PARAMS, 4 << 20);
    const sec = (performance.now() - started) / 1000;
    t.diagnostic(
      `chunker ${(big.length / 1e6 / sec).toFixed(0)} MB/s, ${chunks.length} chunks, mean ${(big.length / chunks.length / 1024).toFixed(0)} KiB`,
    );
  });
});
