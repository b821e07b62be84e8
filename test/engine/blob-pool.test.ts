/**
 * The engine's worker-thread pool must be a drop-in for encoding and decoding on the calling
 * thread: the same blobs (readable by the inline decoder and vice versa), the same catalog
 * errors for damaged blobs, and a clear error for a bad thread count. Every test runs twice: on
 * two worker threads, and on one worker thread with the main thread's lane (local-lane.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { blobId, decodeBlob, encodeBlob } from '../../src/engine/pack/blob-codec.js';
import { BlobPool, engineThreads } from '../../src/engine/parallel/blob-pool.js';
import { mainThreadLane } from '../../src/engine/parallel/thread-start.js';

const key = randomBytes(32);
const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(20_000));
const noise = randomBytes(300_000);

for (const lane of [false, true])
  describe(lane ? 'blob pool with the main thread’s lane' : 'blob pool', () => {
    const pool = new BlobPool(2, lane);
    after(() => pool.close());

    test('encodes on threads what the inline decoder opens, and decodes what the inline encoder sealed', async () => {
      for (const plain of [text, noise, text.subarray(1000, 9000)]) {
        const id = blobId(plain);
        const viaPool = await pool.encode(key, 'data', plain, id, 3);
        assert.equal(viaPool.id, id);
        assert.equal(viaPool.uncompressedLength, plain.length);
        assert.equal(viaPool.compressed, plain !== noise, 'text compresses, random bytes do not');
        const ref = { id, compressed: viaPool.compressed, uncompressedLength: plain.length };
        assert.ok(decodeBlob(key, viaPool.sealed, ref, 'p').equals(plain));

        const inline = encodeBlob(key, 'data', plain, id, 3);
        const whole = { ...ref, compressed: inline.compressed, offset: 0, length: inline.sealed.length };
        assert.deepEqual(await pool.verifyPack(key, Buffer.from(inline.sealed), [whole], 'p'), []);
      }
    });

    test('many requests in flight all come back to their callers', async () => {
      const blobs = Array.from({ length: 40 }, (_, i) =>
        Buffer.concat([text.subarray(0, 50_000 + i), Buffer.of(i)]),
      );
      const encoded = await Promise.all(blobs.map((b) => pool.encode(key, 'data', b, blobId(b), 3)));
      encoded.forEach((e, i) => {
        const ref = { id: e.id, compressed: e.compressed, uncompressedLength: e.uncompressedLength };
        assert.ok(decodeBlob(key, e.sealed, ref, 'p').equals(blobs[i]!), `blob ${i}`);
      });
    });

    test('a damaged blob is named on a thread with its pack, and the thread goes on', async () => {
      const id = blobId(text);
      const e = await pool.encode(key, 'data', text, id, 3);
      const damaged = Buffer.from(e.sealed);
      damaged[damaged.length >> 1]! ^= 0x01;
      const ref = {
        id,
        compressed: e.compressed,
        uncompressedLength: text.length,
        offset: 0,
        length: damaged.length,
      };
      assert.deepEqual(await pool.verifyPack(key, damaged, [ref], 'pack-1'), [
        { id, message: `blob ${id} in pack pack-1 fails authentication` },
      ]);
      // The thread survives a failed request.
      const again = await pool.encode(key, 'data', text, id, 3);
      assert.equal(again.id, id);
    });

    test('verifies a pack on a thread and inline alike, naming each damaged blob', async () => {
      const blobs = [text, noise, text.subarray(0, 5000)];
      const sealed = blobs.map((b) => encodeBlob(key, 'data', b, blobId(b), 3));
      const refs = sealed.reduce<
        { id: string; compressed: boolean; uncompressedLength: number; offset: number; length: number }[]
      >((out, e, i) => {
        const offset = out.length === 0 ? 0 : out[out.length - 1]!.offset + out[out.length - 1]!.length;
        out.push({
          id: e.id,
          compressed: e.compressed,
          uncompressedLength: blobs[i]!.length,
          offset,
          length: e.sealed.length,
        });
        return out;
      }, []);
      const pack = () => Buffer.concat(sealed.map((e) => e.sealed));
      const beyond = { ...refs[0]!, id: 'f'.repeat(64), offset: pack().length - 10 };
      for (const p of [pool, new BlobPool(0)]) {
        assert.deepEqual(await p.verifyPack(key, pack(), refs, 'pk'), []);
        const bad = pack();
        bad[refs[1]!.offset + 40]! ^= 0x01;
        const damaged = await p.verifyPack(key, bad, [...refs, beyond], 'pk');
        assert.deepEqual(
          damaged.map((d) => d.id),
          [refs[1]!.id, beyond.id],
        );
        assert.match(damaged[0]!.message, /fails authentication/);
        assert.match(damaged[1]!.message, /beyond the end of pack pk/);
      }
    });

    test('with no threads everything runs inline', async () => {
      const inline = new BlobPool(0);
      const e = await inline.encode(key, 'data', text, blobId(text), 3);
      assert.ok(
        decodeBlob(
          key,
          e.sealed,
          { id: e.id, compressed: e.compressed, uncompressedLength: text.length },
          'p',
        ).equals(text),
      );
    });

    test('requests in flight go to worker threads, and with the lane to the main thread too', async () => {
      const fresh = new BlobPool(2, lane);
      try {
        const blobs = Array.from({ length: 12 }, (_, i) => Buffer.concat([text, Buffer.of(i)]));
        const encoded = await Promise.all(blobs.map((b) => fresh.encode(key, 'data', b, blobId(b), 3)));
        encoded.forEach((e, i) => assert.equal(e.id, blobId(blobs[i]!)));
        assert.equal(fresh.workerThreadsRunning, lane ? 1 : 2);
        // The lane answers listings, batches and file sessions as a worker thread does.
        const dir = await fresh.scanDir(new URL('.', import.meta.url).pathname);
        assert.ok(dir.entries.length > 0);
      } finally {
        await fresh.close();
      }
    });

    test('COFFER_MAIN_THREAD_WORK is validated, and needs two threads or more', () => {
      assert.equal(mainThreadLane({}), false);
      assert.equal(mainThreadLane({ COFFER_MAIN_THREAD_WORK: 'off' }), false);
      assert.equal(mainThreadLane({ COFFER_MAIN_THREAD_WORK: 'on', COFFER_ENGINE_THREADS: '2' }), true);
      assert.equal(mainThreadLane({ COFFER_MAIN_THREAD_WORK: 'ON', COFFER_ENGINE_THREADS: '4' }), true);
      assert.equal(mainThreadLane({ COFFER_MAIN_THREAD_WORK: 'on', COFFER_ENGINE_THREADS: '1' }), false);
      assert.throws(
        () => mainThreadLane({ COFFER_MAIN_THREAD_WORK: 'yes' }),
        (err) => isCofferError(err, 'InvalidRequest') && /on or off/.test(err.message),
      );
    });

    test('COFFER_ENGINE_THREADS is validated', () => {
      assert.equal(engineThreads({ COFFER_ENGINE_THREADS: '3' }), 3);
      assert.equal(engineThreads({ COFFER_ENGINE_THREADS: '0' }), 0);
      assert.ok(engineThreads({}) >= 1);
      for (const bad of ['-1', 'two', '1.5', '9999']) {
        assert.throws(
          () => engineThreads({ COFFER_ENGINE_THREADS: bad }),
          (err) => isCofferError(err, 'InvalidRequest'),
        );
      }
    });
  });
