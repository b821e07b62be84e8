import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { threadRecycler } from '../../src/engine/buffer-recycler.js';
import { blobId, encodeBlob } from '../../src/engine/pack/blob-codec.js';
import { BlobPool } from '../../src/engine/parallel/blob-pool.js';
import type { EntryWork } from '../../src/engine/parallel/restore-work.js';
import { Repository } from '../../src/engine/index.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import { removeDir, tempDir, TEST_CHUNKER, TEST_SCRYPT } from './source-tree-fixture.js';

// The same batches inline (no threads) and on a pool thread: both must behave alike.
for (const threads of [0, 1]) {
  describe(`restore entries in batches (${threads} pool threads)`, () => {
    let root: string;
    const pool = new BlobPool(threads);

    before(async () => {
      root = await tempDir('restore-entries');
    });
    after(async () => {
      await pool.close();
      await removeDir(root);
    });

    it('creates directories, accepts real ones, and refuses a symlink in the way', async () => {
      await mkdir(join(root, 'exists'));
      await symlink('/tmp', join(root, 'sneaky'));
      const out = await pool.restoreEntries([
        { op: 'mkdir', path: join(root, 'a') },
        { op: 'mkdir', path: join(root, 'a', 'b') },
        { op: 'mkdir', path: join(root, 'exists') },
        { op: 'mkdir', path: join(root, 'sneaky') },
        { op: 'mkdir', path: join(root, 'missing-parent', 'c') },
      ]);
      assert.deepEqual(out.slice(0, 3), [
        { ok: true, warnings: [] },
        { ok: true, warnings: [] },
        { ok: true, warnings: [] },
      ]);
      assert.deepEqual(out[3], { ok: false, why: 'exists and is not a directory (possibly a symlink)' });
      assert.deepEqual(out[4], { ok: false, why: 'cannot create directory (ENOENT)' });
      assert.ok((await stat(join(root, 'a', 'b'))).isDirectory());
    });

    it('creates symlinks with their time, replaces a file, and refuses to replace a directory', async () => {
      await writeFile(join(root, 'was-a-file'), 'x');
      await mkdir(join(root, 'is-a-dir'));
      const mtime = 1_700_000_000.123456;
      const work: EntryWork[] = [
        { op: 'symlink', path: join(root, 'l1'), target: 'a/b', owner: null, mtime },
        { op: 'symlink', path: join(root, 'was-a-file'), target: '../elsewhere', owner: null, mtime },
        { op: 'symlink', path: join(root, 'is-a-dir'), target: 'x', owner: null, mtime },
      ];
      const out = await pool.restoreEntries(work);
      assert.deepEqual(out.slice(0, 2), [
        { ok: true, warnings: [] },
        { ok: true, warnings: [] },
      ]);
      assert.deepEqual(out[2], { ok: false, why: 'exists and is a directory' });
      assert.equal(await readlink(join(root, 'l1')), 'a/b');
      assert.equal(await readlink(join(root, 'was-a-file')), '../elsewhere');
      assert.equal((await lstat(join(root, 'l1'))).mtimeMs, 1_700_000_000_123.456);
    });

    it("sets a directory's times and mode, never through a symlink", async () => {
      await mkdir(join(root, 'meta'));
      const meta = { mtime: 1_600_000_000.5, mode: 0o751, owner: null };
      const out = await pool.restoreEntries([
        { op: 'dir-metadata', path: join(root, 'meta'), meta },
        { op: 'dir-metadata', path: join(root, 'sneaky'), meta },
      ]);
      assert.deepEqual(out[0], { ok: true, warnings: [] });
      assert.equal(out[1]!.ok, false);
      const st = await stat(join(root, 'meta'));
      assert.equal(st.mode & 0o7777, 0o751);
      assert.equal(st.mtimeMs, 1_600_000_000_500);
      // The symlink's target (/tmp) kept its own mode.
      assert.notEqual((await stat('/tmp')).mode & 0o7777, 0o751);
    });
  });
}

// Restore writes go to a thread in batches (blob-pool.ts restoreWrite): each write still gets
// its own outcome, in a batch that mixes good, damaged and failing writes.
for (const threads of [0, 1, 2]) {
  describe(`restore writes in batches (${threads} pool threads)`, () => {
    let root: string;
    const pool = new BlobPool(threads);
    const key = randomBytes(32);
    before(async () => {
      root = await tempDir('restore-writes');
    });
    after(async () => {
      await pool.close();
      await removeDir(root);
    });

    it('each of many writes given at once gets its own outcome, in order', async () => {
      const contents = Array.from({ length: 70 }, (_, i) => Buffer.from(`file ${i}\n`.repeat(50 + i * 40)));
      const sealed = contents.map((c) => encodeBlob(key, 'data', c, blobId(c), 3));
      const damaged = Buffer.from(sealed[7]!.sealed);
      damaged[damaged.length - 1]! ^= 0xff;
      const mtime = 1_700_000_000.5;
      const outcomes = await Promise.all(
        contents.map((c, i) => {
          const e = sealed[i]!;
          return pool.restoreWrite(key, {
            path: i === 11 ? join(root, 'no-such-dir', 'f') : join(root, `f-${i}`),
            create: true,
            blob: {
              sealed: i === 7 ? damaged : e.sealed,
              ref: { id: e.id, compressed: e.compressed, uncompressedLength: c.length },
              packId: 'p',
              offset: 0,
            },
            finish: { mtime, mode: 0o640, owner: null },
          });
        }),
      );
      for (const [i, o] of outcomes.entries()) {
        if (i === 7) assert.equal(o.status, 'damaged', 'the damaged blob alone');
        else if (i === 11) assert.deepEqual(o, { status: 'error', stage: 'create', errno: 'ENOENT' });
        else {
          assert.deepEqual(o, { status: 'done', bytes: contents[i]!.length, warning: null }, `write ${i}`);
          assert.ok((await readFile(join(root, `f-${i}`))).equals(contents[i]!));
          const st = await stat(join(root, `f-${i}`));
          assert.equal(st.mode & 0o777, 0o640);
          assert.equal(st.mtimeMs, 1_700_000_000_500);
        }
      }
    });

    it('a batch’s buffer of sealed blobs comes back from its thread for the next batch', async () => {
      if (threads === 0) return; // inline writes use the caller's buffers, no batch buffer
      const content = randomBytes(300_000); // incompressible: a sealed blob of about the same size
      const e = encodeBlob(key, 'data', content, blobId(content), 3);
      // Hold every kept buffer that could serve the batch, so that it takes a fresh one.
      const held: Buffer[] = [];
      for (let kept = -1; kept !== threadRecycler.kept;) {
        kept = threadRecycler.kept;
        held.push(threadRecycler.take(e.sealed.length));
      }
      const keptBefore = threadRecycler.kept;
      const o = await pool.restoreWrite(key, {
        path: join(root, 'batch-buffer'),
        create: true,
        blob: {
          sealed: e.sealed,
          ref: { id: e.id, compressed: e.compressed, uncompressedLength: content.length },
          packId: 'p',
          offset: 0,
        },
        finish: null,
      });
      assert.deepEqual(o, { status: 'done', bytes: content.length, warning: null });
      // Its 512 KiB pooled buffer, taken from this thread's recycler and given back on the reply.
      assert.equal(threadRecycler.kept, keptBefore + 512 * 1024);
      assert.ok((await readFile(join(root, 'batch-buffer'))).equals(content));
      for (const b of held) threadRecycler.give(b.buffer as ArrayBuffer);
    });

    it('a sealed blob in shared memory is read where it lies; only the others are copied', async () => {
      const contents = [randomBytes(300_000), randomBytes(300_000), Buffer.from('shared '.repeat(9000))];
      const encoded = contents.map((c) => encodeBlob(key, 'data', c, blobId(c), 3));
      // Blobs 0 and 2 lie in shared memory, as the restorer's pack ranges do, between other bytes.
      const shared = Buffer.from(new SharedArrayBuffer(2 * 1024 * 1024)).fill(0xa5);
      const inShared = (i: number, at: number) => {
        const view = shared.subarray(at, at + encoded[i]!.sealed.length);
        view.set(encoded[i]!.sealed);
        return view;
      };
      const sealed = [inShared(0, 12_345), encoded[1]!.sealed, inShared(2, 700_001)];
      const held: Buffer[] = [];
      for (let kept = -1; kept !== threadRecycler.kept;) {
        kept = threadRecycler.kept;
        held.push(threadRecycler.take(encoded[1]!.sealed.length));
      }
      const keptBefore = threadRecycler.kept;
      const outcomes = await Promise.all(
        contents.map((c, i) =>
          pool.restoreWrite(key, {
            path: join(root, `shared-${i}`),
            create: true,
            blob: {
              sealed: sealed[i]!,
              ref: { id: encoded[i]!.id, compressed: encoded[i]!.compressed, uncompressedLength: c.length },
              packId: 'p',
              offset: 0,
            },
            finish: null,
          }),
        ),
      );
      for (const [i, o] of outcomes.entries()) {
        assert.deepEqual(o, { status: 'done', bytes: contents[i]!.length, warning: null }, `write ${i}`);
        assert.ok((await readFile(join(root, `shared-${i}`))).equals(contents[i]!));
      }
      // On a thread, the batch's buffer held only blob 1 (512 KiB pooled, back with the reply):
      // copying all three would have taken a 1 MiB one.
      if (threads > 0) assert.equal(threadRecycler.kept, keptBefore + 512 * 1024);
      for (const b of held) threadRecycler.give(b.buffer as ArrayBuffer);
    });
  });
}

describe('restore of a pack larger than the reused range buffers', () => {
  it('reads it into shared memory of its own and restores every byte', async () => {
    const work = await tempDir('big-range');
    try {
      // One 40 MiB pack holding a 30 MiB file: its range is past the 17 MiB buffers.
      const repo = await Repository.init(new LocalBackend(join(work, 'vault')), 'pw', {
        scrypt: TEST_SCRYPT,
        chunker: TEST_CHUNKER,
        packSize: 40 * 1024 * 1024,
      });
      const content = randomBytes(30 * 1024 * 1024);
      await mkdir(join(work, 'src'));
      await writeFile(join(work, 'src', 'big'), content);
      const { snapshotId } = await repo.backup({ sourcePath: join(work, 'src') });
      const packs = await new LocalBackend(join(work, 'vault')).list('data');
      const sizes = await Promise.all(
        packs.map(async (p) => (await stat(join(work, 'vault', 'data', p))).size),
      );
      assert.ok(Math.max(...sizes) > 30 * 1024 * 1024, `pack sizes ${sizes.join(', ')}`);
      await repo.restore({ snapshotId, target: join(work, 'out') });
      assert.ok((await readFile(join(work, 'out', 'big'))).equals(content));
    } finally {
      await removeDir(work);
    }
  });
});
