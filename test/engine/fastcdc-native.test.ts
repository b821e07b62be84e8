import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import {
  type ChunkerParams,
  CutPointFinder,
  DEFAULT_CHUNKER_PARAMS,
  gearTableFromSeed,
} from '../../src/engine/chunker/fastcdc.js';
import { nativeFastCdc } from '../../src/engine/chunker/native-fastcdc.js';

/** Every cut of `data` fed in pieces of `pieceSize`, as offsets from its start. */
function cuts(data: Uint8Array, finder: CutPointFinder, pieceSize: number): number[] {
  const out: number[] = [];
  for (let o = 0; o < data.length; o += pieceSize) {
    const piece = data.subarray(o, Math.min(data.length, o + pieceSize));
    let pos = 0;
    for (;;) {
      const at = finder.findCut(piece, pos);
      if (at < 0) break;
      out.push(o + at);
      pos = at;
    }
  }
  return out;
}

/** Text-like bytes: runs of a few letters, the kind of data where a weak hash cuts too often. */
function textLike(length: number): Buffer {
  const words = ['alpha ', 'beta ', 'gamma\n', 'delta ', '{ "x": 1 }\n', '    '];
  const parts: string[] = [];
  let n = 0;
  let seed = 7;
  while (n < length) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const w = words[seed % words.length]!;
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, length);
}

const SMALL: ChunkerParams = { minSize: 2048, avgSize: 8192, maxSize: 65536 };

describe('FastCDC gear-hash addon', () => {
  const gear = gearTableFromSeed(Buffer.from('native chunker test seed'));

  it('is built by npm ci', () => {
    assert.ok(nativeFastCdc(), 'native/fastcdc/build/Release/fastcdc.node loads');
  });

  it('finds the same cut points as the JavaScript loop, whatever the data, sizes and read pattern', () => {
    const datasets = {
      random: randomBytes(3 * 1024 * 1024),
      zeros: Buffer.alloc(1024 * 1024),
      text: textLike(2 * 1024 * 1024),
    };
    for (const [name, data] of Object.entries(datasets)) {
      for (const params of [SMALL, { minSize: 64, avgSize: 256, maxSize: 1024 }]) {
        for (const piece of [1, 7, 1000, 65536, data.length]) {
          // Single bytes are slow in either loop: a prefix is enough to cover a piece boundary per byte.
          const sample = piece === 1 ? data.subarray(0, 200_000) : data;
          const viaC = cuts(sample, new CutPointFinder(gear, params), piece);
          const viaJs = cuts(sample, new CutPointFinder(gear, params, false), piece);
          assert.deepEqual(viaC, viaJs, `${name}, sizes ${JSON.stringify(params)}, pieces of ${piece}`);
          assert.ok(viaC.length > 0, `${name}: some cuts`);
        }
      }
    }
    // The default sizes, where a chunk's first 512 KiB are skipped: over random data in 128 KiB reads.
    const big = randomBytes(24 * 1024 * 1024);
    const viaC = cuts(big, new CutPointFinder(gear, DEFAULT_CHUNKER_PARAMS), 128 * 1024);
    const viaJs = cuts(big, new CutPointFinder(gear, DEFAULT_CHUNKER_PARAMS, false), 128 * 1024);
    assert.deepEqual(viaC, viaJs);
    assert.ok(viaC.length >= 8, `${viaC.length} cuts in 24 MiB`);
  });

  it('refuses arguments that would read outside the buffer or the table', () => {
    const native = nativeFastCdc();
    assert.ok(native);
    const buf = randomBytes(100);
    const state = new Int32Array(1);
    assert.equal(native.scan(buf, 0, 100, 0, gear, state) >= -1, true);
    assert.throws(() => native.scan(buf, 0, 101, 0, gear, state), RangeError);
    assert.throws(() => native.scan(buf, 50, 10, 0, gear, state), RangeError);
    assert.throws(() => native.scan(buf, -1, 10, 0, gear, state), RangeError);
    assert.throws(() => native.scan(buf, 0, 10, 0, new Int32Array(255), state), RangeError);
    assert.throws(() => native.scan(buf, 0, 10, 0, gear, new Int32Array(0)), RangeError);
    const loose = native.scan as (...args: unknown[]) => number;
    assert.throws(() => loose('not bytes', 0, 10, 0, gear, state), TypeError);
    assert.throws(() => loose(buf, 0, 10, 0, new Uint32Array(256), state), TypeError);
    assert.throws(() => loose(buf, '0', 10, 0, gear, state), TypeError);
  });

  it('is left out with COFFER_NATIVE_CHUNKER=off, and the chunker cuts the same', () => {
    const module = fileURLToPath(new URL('../../src/engine/chunker/fastcdc.js', import.meta.url));
    const loader = fileURLToPath(new URL('../../src/engine/chunker/native-fastcdc.js', import.meta.url));
    const script = `
      const { CutPointFinder, gearTableFromSeed } = await import(${JSON.stringify(module)});
      const { nativeFastCdc } = await import(${JSON.stringify(loader)});
      let input = '';
      for await (const part of process.stdin) input += part;
      const data = Buffer.from(input, 'base64');
      const f = new CutPointFinder(gearTableFromSeed(Buffer.from('native chunker test seed')),
        { minSize: 2048, avgSize: 8192, maxSize: 65536 });
      const cuts = []; let pos = 0;
      for (;;) { const at = f.findCut(data, pos); if (at < 0) break; cuts.push(at); pos = at; }
      process.stdout.write(JSON.stringify({ loaded: nativeFastCdc() !== null, cuts }));`;
    const data = randomBytes(256 * 1024);
    const out = JSON.parse(
      // The data goes through stdin: as an argument it would exceed the kernel's limit.
      execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, COFFER_NATIVE_CHUNKER: 'off' },
        input: data.toString('base64'),
      }).toString(),
    ) as { loaded: boolean; cuts: number[] };
    assert.equal(out.loaded, false);
    assert.deepEqual(out.cuts, cuts(data, new CutPointFinder(gear, SMALL), data.length));
  });
});
