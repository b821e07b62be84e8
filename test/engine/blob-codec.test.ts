import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { KEY_LENGTH } from '../../src/engine/crypto/aead.js';
import { blobId, decodeBlob, encodeBlob } from '../../src/engine/pack/blob-codec.js';
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
