/**
 * Backend.startUpload on every backend: an object written piece by piece, out of order and
 * concurrently, is invisible until commit, then reads back byte for byte; an aborted one leaves
 * nothing behind. And the PackWriter built on it: a streamed pack is named by the hash of its
 * stored bytes and its header lists every blob where it lies, small blobs gathered into few
 * writes included.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeBlob } from '../../src/engine/pack/blob-codec.js';
import { packHeaderFromBytes } from '../../src/engine/pack/pack-format.js';
import { GATHER_BELOW, packPath, PackWriter } from '../../src/engine/pack/pack-writer.js';
import type { ObjectUpload } from '../../src/storage/backend.js';
import { BufferedUpload } from '../../src/storage/buffered-upload.js';
import { backends, createTestStorage, type TestStorage } from '../support/backends.js';

for (const kind of backends()) {
  describe(`object uploads (${kind})`, () => {
    let storage: TestStorage;
    before(async () => {
      storage = await createTestStorage(kind);
    });
    after(() => storage.cleanup());

    it('writes pieces out of order, shows nothing until commit, then the whole object', async () => {
      const location = storage.location('upload');
      const backend = storage.open(location);
      const whole = randomBytes(3 * 1024 * 1024 + 17);
      const upload = await backend.startUpload();
      const cuts = [0, 5, 700_000, 1_500_000, 2_999_999, whole.length];
      const writes: Promise<void>[] = [];
      // Last piece first, all in flight at once.
      for (let i = cuts.length - 2; i >= 0; i--) {
        writes.push(upload.write(whole.subarray(cuts[i]!, cuts[i + 1]!), cuts[i]!));
      }
      await Promise.all(writes);
      assert.deepEqual(await backend.list(''), []);
      await upload.commit('data/aa/object');
      assert.deepEqual(await backend.list(''), ['data/aa/object']);
      assert.ok((await backend.load('data/aa/object')).equals(whole));
      await assert.rejects(upload.write(Buffer.from('late'), whole.length));
      await upload.abort(); // harmless after commit
      assert.ok((await backend.load('data/aa/object')).equals(whole));
      if (kind === 'local') assert.deepEqual(await readdir(join(location, 'tmp')), []);
    });

    it('leaves nothing behind when aborted', async () => {
      const location = storage.location('abort');
      const backend = storage.open(location);
      const upload = await backend.startUpload();
      await upload.write(randomBytes(100_000), 0);
      await upload.abort();
      assert.deepEqual(await backend.list(''), []);
      if (kind === 'local') assert.deepEqual(await readdir(join(location, 'tmp')), []);
    });

    it('streams a pack named by the hash of its bytes, with every blob in its header', async () => {
      const backend = storage.open(storage.location('pack'));
      const key = randomBytes(32);
      const pack = new PackWriter(await backend.startUpload());
      const blobs = [randomBytes(200_000), Buffer.alloc(300_000, 7), randomBytes(10)].map((plain) =>
        encodeBlob(key, 'data', plain, createHash('sha256').update(plain).digest('hex'), 3),
      );
      await Promise.all(blobs.map((b) => pack.add(b)));
      assert.equal(pack.count, 3);
      const stored = await pack.store(key);
      const bytes = await backend.load(packPath(stored.id));
      assert.equal(stored.id, createHash('sha256').update(bytes).digest('hex'));
      assert.equal(stored.size, bytes.length);
      const header = packHeaderFromBytes(key, bytes, stored.id);
      assert.deepEqual(header, stored.blobs);
      for (const [i, entry] of header.entries()) {
        assert.equal(entry.id, blobs[i]!.id);
        assert.ok(bytes.subarray(entry.offset, entry.offset + entry.length).equals(blobs[i]!.sealed));
      }
    });

    it('gathers small blobs into few writes, in place between large ones, and reuses each buffer at once', async () => {
      const backend = storage.open(storage.location('gathered'));
      const key = randomBytes(32);
      const upload = await backend.startUpload();
      const writes: number[] = [];
      // The real upload, observed: how many writes reach storage, and of what size.
      const observed: ObjectUpload = {
        write: (data, offset) => {
          writes.push(data.length);
          return upload.write(data, offset);
        },
        commit: (path) => upload.commit(path),
        abort: () => upload.abort(),
      };
      const pack = new PackWriter(observed);
      const plains: Buffer[] = [];
      for (let i = 0; i < 600; i++) {
        // Mostly small blobs (3-6 KB sealed, incompressible), a large one every 150.
        plains.push(i % 150 === 75 ? randomBytes(GATHER_BELOW * 3) : randomBytes(3000 + (i % 7) * 500));
      }
      const blobs = plains.map((plain) =>
        encodeBlob(key, 'data', plain, createHash('sha256').update(plain).digest('hex'), 3),
      );
      const originals = blobs.map((b) => Buffer.from(b.sealed));
      // Up to 8 adds in flight; each blob's buffer is overwritten as soon as its add settles.
      const inFlight = new Set<Promise<void>>();
      for (const b of blobs) {
        const adding = pack.add(b).then(() => {
          b.sealed.fill(0xee);
        });
        inFlight.add(adding);
        void adding.finally(() => inFlight.delete(adding));
        if (inFlight.size >= 8) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      const stored = await pack.store(key);
      const bytes = await backend.load(packPath(stored.id));
      assert.equal(stored.id, createHash('sha256').update(bytes).digest('hex'));
      const header = packHeaderFromBytes(key, bytes, stored.id);
      assert.deepEqual(header, stored.blobs);
      for (const [i, entry] of header.entries()) {
        assert.ok(
          bytes.subarray(entry.offset, entry.offset + entry.length).equals(originals[i]!),
          `blob ${i}`,
        );
      }
      // 596 small blobs of about 2.7 MB in all went out in a handful of writes.
      assert.ok(writes.length <= 20, `${writes.length} writes for ${blobs.length} blobs`);
    });

    it('fails store() when a write of gathered blobs fails, and stores nothing', async () => {
      const backend = storage.open(storage.location('gathered-fail'));
      const key = randomBytes(32);
      const upload = await backend.startUpload();
      const failing: ObjectUpload = {
        write: (data, offset) =>
          offset === 0 ? Promise.reject(new Error('disk full')) : upload.write(data, offset),
        commit: (path) => upload.commit(path),
        abort: () => upload.abort(),
      };
      const pack = new PackWriter(failing);
      for (let i = 0; i < 10; i++) {
        const plain = randomBytes(2000);
        await pack.add(encodeBlob(key, 'data', plain, createHash('sha256').update(plain).digest('hex'), 3));
      }
      await assert.rejects(pack.store(key), /disk full/);
      assert.deepEqual(await backend.list(''), []);
    });
  });
}

describe('BufferedUpload', () => {
  it('gathers pieces past its first buffer and saves them once, at commit', async () => {
    const saved: { path: string; data: Buffer }[] = [];
    const upload = new BufferedUpload(async (path, data) => {
      saved.push({ path, data: Buffer.from(data) });
    });
    const whole = randomBytes(2 * 1024 * 1024 + 3);
    const half = 1024 * 1024 + 1;
    await upload.write(whole.subarray(half), half);
    const first = Buffer.from(whole.subarray(0, half));
    await upload.write(first, 0);
    first.fill(0); // the caller may reuse its buffer once the write settled
    assert.equal(saved.length, 0);
    await upload.commit('x/y');
    assert.equal(saved.length, 1);
    assert.equal(saved[0]!.path, 'x/y');
    assert.ok(saved[0]!.data.equals(whole));
    await assert.rejects(upload.commit('x/y'));
  });
});
