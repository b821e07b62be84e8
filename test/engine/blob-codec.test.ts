import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { KEY_LENGTH } from '../../src/engine/crypto/aead.js';
import zstd from 'zstd-napi';
import zbind from 'zstd-napi/binding.js';
import { blobId, compressToScratch, decodeBlob, encodeBlob } from '../../src/engine/pack/blob-codec.js';
import { isCofferError } from '../../src/errors/coffer-error.js';

/** A blob as the index knows it, from what encodeBlob returned. */
function refOf(e: ReturnType<typeof encodeBlob>): {
  id: string;
  compressed: boolean;
  uncompressedLength: number;
} {
  return { id: e.id, compressed: e.compressed, uncompressedLength: e.uncompressedLength };
}

describe('blob codec, transient decode', () => {
  const key = randomBytes(KEY_LENGTH);
  const compressible = Buffer.alloc(3 * 1024 * 1024 + 5, 'coffer restores this text. ');
  const random = randomBytes(2 * 1024 * 1024 + 7);

  it('decodes compressed and incompressible blobs, in turn and growing, to their plaintext', () => {
    const blobs = [
      compressible,
      random,
      compressible.subarray(0, 1000),
      randomBytes(5 * 1024 * 1024),
      random,
    ];
    for (const [i, plain] of blobs.entries()) {
      const e = encodeBlob(key, 'data', plain, blobId(plain), 3);
      assert.equal(
        e.compressed,
        plain !== blobs[1] && plain !== blobs[3] && plain !== blobs[4],
        `blob ${i} compressed`,
      );
      const out = decodeBlob(key, e.sealed, refOf(e), 'p', true);
      assert.ok(out.equals(plain), `blob ${i} round-trips`);
      assert.ok(
        decodeBlob(key, e.sealed, refOf(e), 'p').equals(plain),
        `blob ${i} round-trips without transient`,
      );
    }
  });

  it('a transient result is a view the next transient decode reuses; a plain decode is its own', () => {
    const a = encodeBlob(key, 'data', random, blobId(random), 3);
    const kept = decodeBlob(key, a.sealed, refOf(a), 'p');
    const first = decodeBlob(key, a.sealed, refOf(a), 'p', true);
    const other = randomBytes(random.length);
    const b = encodeBlob(key, 'data', other, blobId(other), 3);
    const second = decodeBlob(key, b.sealed, refOf(b), 'p', true);
    assert.equal(first.buffer, second.buffer, 'one reused buffer per thread');
    assert.ok(second.equals(other));
    assert.ok(kept.equals(random), 'a decode without transient is not overwritten');
  });

  it('grows its reused buffer by powers of two, not to each new largest blob', () => {
    // Larger than anything decoded above, and growing: each would have taken a new buffer.
    const views = [8.5, 9, 10.5, 12].map((mib) => {
      const plain = Buffer.alloc(Math.round(mib * 1024 * 1024), `block of ${mib} MiB `);
      const e = encodeBlob(key, 'data', plain, blobId(plain), 3);
      const out = decodeBlob(key, e.sealed, refOf(e), 'p', true);
      assert.ok(out.equals(plain), `${mib} MiB round-trips`);
      return out.buffer;
    });
    assert.equal(views[0]!.byteLength, 16 * 1024 * 1024);
    for (const v of views) assert.equal(v, views[0], 'one buffer served them all');
  });

  it('refuses tampered, mislabelled and truncated blobs with RepositoryCorrupt either way', () => {
    const e = encodeBlob(key, 'data', compressible, blobId(compressible), 3);
    const flipped = Buffer.from(e.sealed);
    flipped.writeUInt8(flipped.readUInt8(100) ^ 1, 100);
    const cases: [string, Buffer, ReturnType<typeof refOf>][] = [
      ['tampered', flipped, refOf(e)],
      ['truncated', e.sealed.subarray(0, 20), refOf(e)],
      ['wrong id', e.sealed, { ...refOf(e), id: blobId(random) }],
      ['wrong length', e.sealed, { ...refOf(e), uncompressedLength: compressible.length - 1 }],
    ];
    for (const transient of [true, false]) {
      for (const [what, sealed, ref] of cases) {
        assert.throws(
          () => decodeBlob(key, sealed, ref, 'pack-1', transient),
          (err: unknown) => isCofferError(err, 'RepositoryCorrupt'),
          `${what}, transient ${transient}`,
        );
      }
    }
  });
});

/** 1 MiB whose 16 KiB stretches alternate between text and a 16-letter noise: blocks zstd would split. */
function mixedBlocks(length: number): Buffer {
  const text = 'the quick brown fox jumps over the lazy dog ';
  const b = Buffer.alloc(length);
  let x = 1;
  for (let i = 0; i < length; i++) {
    if ((i >> 14) & 1) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      b[i] = (x >>> 24) & 15;
    } else b[i] = text.charCodeAt(i % text.length) ^ ((i >> 9) & 3);
  }
  return b;
}

/**
 * What libzstd writes for `src` at `level` without pre-splitting blocks, from a fresh context,
 * with `chainLog` when given.
 */
function unsplit(src: Buffer, level: number, chainLog?: number): Buffer {
  const cctx = new zbind.CCtx();
  cctx.setParameter(1017 as zbind.CParameter, 1);
  cctx.setParameter(zbind.CParameter.compressionLevel, level);
  if (chainLog !== undefined) cctx.setParameter(zbind.CParameter.chainLog, chainLog);
  const out = Buffer.alloc(zbind.compressBound(src.length));
  return out.subarray(0, cctx.compress2(out, src));
}

describe('blob codec, compression parameters', () => {
  const data = mixedBlocks(1 << 20);

  it('compresses without pre-splitting blocks, at the level asked each time', () => {
    // The data is one zstd splits: the default output differs, so this cannot pass by accident.
    assert.notEqual(zstd.compress(data, { compressionLevel: 3 }).length, unsplit(data, 3).length);
    // Level 3 on a chunk-sized input uses the smaller short-match table (chainLogFor), which
    // changes the frame; other levels keep zstd's tables, also after level 3 ran on the context.
    assert.ok(!unsplit(data, 3, 15).equals(unsplit(data, 3)));
    for (const level of [3, 1, 3, 6]) {
      const got = Buffer.from(compressToScratch(data, level));
      const want = level === 3 ? unsplit(data, 3, 15) : unsplit(data, level);
      assert.ok(got.equals(want), `level ${level}: the unsplit frame`);
      assert.ok(zstd.decompress(got).equals(data), `level ${level} round-trips`);
    }
    // Each size tier has its own context, and small inputs keep their own parameters too.
    const small = data.subarray(0, 10_000);
    assert.ok(Buffer.from(compressToScratch(small, 3)).equals(unsplit(small, 3)));
  });
});
