/**
 * BlobSaver (src/engine/repository/blob-saver.ts): deduplication within a run and against the
 * index, and what becomes of a plaintext buffer handed over for a blob that is not stored again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { threadRecycler } from '../../src/engine/buffer-recycler.js';
import { blobId } from '../../src/engine/pack/blob-codec.js';
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
});
