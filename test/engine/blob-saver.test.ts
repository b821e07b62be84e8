/**
 * BlobSaver (src/engine/repository/blob-saver.ts): deduplication within a run and against the
 * index, and what becomes of a plaintext buffer handed over for a blob that is not stored again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { threadRecycler } from '../../src/engine/buffer-recycler.js';
import { writeIndexFile } from '../../src/engine/index/master-index.js';
import { blobId, encodeBlob } from '../../src/engine/pack/blob-codec.js';
import { BlobPool } from '../../src/engine/parallel/blob-pool.js';
import { BlobSaver } from '../../src/engine/repository/blob-saver.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import { newRepository, removeDir, tempDir } from './source-tree-fixture.js';

describe('blob saver', () => {
  let dir: string;
  let ctx: RepositoryContext;
  before(async () => {
    dir = await tempDir('blob-saver');
    const repo = await newRepository(dir);
    ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
  });
  after(() => removeDir(dir));

  test('stores a blob once per run, and a handed-over duplicate’s buffer goes back for reuse', async () => {
    // No threads: a released buffer goes to this thread's recycler, where it can be seen.
    const saver = new BlobSaver(ctx, await ctx.loadIndex(), new BlobPool(0));
    const content = randomBytes(100_000);
    const id = blobId(content);
    const first = threadRecycler.take(content.length);
    content.copy(first);
    const stored = await saver.save('data', first, id, true, true);
    assert.equal(stored.isNew, true);
    assert.ok(stored.storedBytes > content.length, 'random data is stored uncompressed, sealed');

    const again = threadRecycler.take(content.length);
    content.copy(again);
    const keptBefore = threadRecycler.kept;
    const dup = await saver.save('data', again, id, true, true);
    assert.deepEqual(dup, { isNew: false, storedBytes: 0, compressed: false });
    assert.equal(
      threadRecycler.kept - keptBefore,
      again.buffer.byteLength,
      'the duplicate’s buffer is kept for reuse',
    );
    assert.equal(threadRecycler.take(content.length).buffer, again.buffer, 'and serves the next chunk');

    // Not handed over (`give` false): the caller keeps its buffer, nothing is recycled.
    const keptNow = threadRecycler.kept;
    const kept = Buffer.from(content);
    assert.equal((await saver.save('data', kept, id, true)).isNew, false);
    assert.equal(threadRecycler.kept, keptNow);
    assert.ok(kept.equals(content));

    await saver.flush();
    assert.equal(saver.stored.length, 1, 'one pack');
    assert.equal(saver.stored[0]!.blobs.length, 1, 'holding the blob once');
  });

  test('takes a small sealed blob at once while its pack is open, and only then', async () => {
    const saver = new BlobSaver(ctx, await ctx.loadIndex(), new BlobPool(0));
    const plain = (n: number) => Buffer.from(`small file ${n} `.repeat(40));
    const sealed = (p: Buffer) => encodeBlob(ctx.key, 'data', p, blobId(p), 3);
    const a = sealed(plain(1));
    // No pack is open before the first save: nothing is done, and the caller takes the slow path.
    assert.equal(saver.saveEncodedNow(a), null);
    assert.equal(saver.knows(a.id), false);
    assert.equal((await saver.saveEncoded(a)).isNew, true);
    assert.deepEqual(saver.saveEncodedNow(sealed(plain(1))), {
      isNew: false,
      storedBytes: 0,
      compressed: false,
    });
    const b = sealed(plain(2));
    const got = saver.saveEncodedNow(b);
    assert.deepEqual(got, { isNew: true, storedBytes: b.sealed.length, compressed: true });
    assert.equal(saver.knows(b.id), true);
    // A blob too large to be gathered is written from its own buffer: not here.
    const large = randomBytes(100_000);
    assert.equal(saver.saveEncodedNow(encodeBlob(ctx.key, 'data', large, blobId(large), 3)), null);
    await saver.flush();
    // Both small blobs are in the one pack, and read back as they were.
    assert.equal(saver.stored.length, 1);
    assert.deepEqual(
      saver.stored[0]!.blobs.map((x) => x.id),
      [a.id, b.id],
    );
    await writeIndexFile(ctx.backend, ctx.key, saver.stored);
    const index = await ctx.loadIndex();
    for (const [blob, n] of [
      [a, 1],
      [b, 2],
    ] as const) {
      assert.ok((await ctx.loadBlob(index.get(blob.id)!)).equals(plain(n)), `blob ${n} reads back`);
    }
  });
});
