/**
 * A directory listed and compared with its tree in the parent backup on a pool thread
 * (src/engine/parallel/dir-diff.ts), and a changed directory's new tree built there: what comes
 * back to the main thread, inline and through the pool's batches.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gearTableFromSeed } from '../../src/engine/chunker/fastcdc.js';
import { decodeBlob, encodeBlob, type EncodedBlob } from '../../src/engine/pack/blob-codec.js';
import { BlobPool } from '../../src/engine/parallel/blob-pool.js';
import { buildTree, diffDirectory, type SealedTree } from '../../src/engine/parallel/dir-diff.js';
import { type ReadContext, scanDirectory } from '../../src/engine/parallel/file-work.js';
import { decodeTree, encodeTree, type TreeNode } from '../../src/engine/tree/tree.js';
import { removeDir, tempDir, testReadContext } from './source-tree-fixture.js';

const key = randomBytes(32);
const gear = gearTableFromSeed(randomBytes(32));
const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const SUBTREE = 'ab'.repeat(32);

const context = (knownIds: string[]): ReadContext => testReadContext(key, gear, knownIds);

/** The nodes a backup of `dir` would have written now: files' content is one blob each. */
function nodesOf(dir: string, contents: Map<string, string>): TreeNode[] {
  return scanDirectory(dir).entries.map((e) => {
    const node: TreeNode = {
      name: e.name,
      type: e.kind === 'symlink' ? 'symlink' : e.kind === 'dir' ? 'dir' : 'file',
      mode: e.mode,
      mtimeNs: e.mtimeNs,
      ctimeNs: e.ctimeNs,
      size: e.size,
      uid: e.uid,
      gid: e.gid,
      inode: e.inode,
    };
    if (e.kind === 'file') node.content = [sha(contents.get(e.name)!)];
    if (e.kind === 'symlink') node.linkTarget = e.linkTarget!;
    if (e.kind === 'dir') node.subtree = SUBTREE;
    return node;
  });
}

/** A sealed tree blob's plaintext. */
const opened = (blob: EncodedBlob) => decodeBlob(key, blob.sealed, blob, 'cd'.repeat(32));

function sealTree(nodes: TreeNode[]): SealedTree {
  const bytes = encodeTree(nodes);
  const id = sha(bytes);
  const blob = encodeBlob(key, 'tree', bytes, id, 3);
  return {
    id,
    packId: 'cd'.repeat(32),
    compressed: blob.compressed,
    uncompressedLength: blob.uncompressedLength,
    sealed: new Uint8Array(blob.sealed),
  };
}

describe('directory diffs against the parent tree', () => {
  let work: string;
  const contents = new Map([
    ['a.txt', 'alpha\n'],
    ['b.txt', 'beta\n'],
    ['c.txt', 'gamma\n'.repeat(100)],
  ]);
  const allIds = [...contents.values()].map((c) => sha(c));

  /** A fresh directory: three files, a symlink and a subdirectory, and its tree as the parent's. */
  async function fixture(name: string): Promise<{ dir: string; parent: SealedTree; nodes: TreeNode[] }> {
    const dir = join(work, name);
    await mkdir(join(dir, 'sub'), { recursive: true });
    for (const [file, text] of contents) await writeFile(join(dir, file), text);
    await symlink('a.txt', join(dir, 'link'));
    const nodes = nodesOf(dir, contents);
    return { dir, parent: sealTree(nodes), nodes };
  }

  before(async () => {
    work = await tempDir('dir-diff');
  });
  after(() => removeDir(work));

  test('an unchanged directory comes back as its subdirectories and two counts', async () => {
    const { dir, parent } = await fixture('unchanged');
    const diff = diffDirectory(dir, parent, context(allIds));
    assert.equal(diff.error, null);
    assert.equal(diff.parentError, null);
    assert.equal(diff.sameFiles, 3);
    assert.equal(
      diff.sameBytes,
      [...contents.values()].reduce((n, c) => n + c.length, 0),
    );
    assert.deepEqual(diff.removed, []);
    assert.deepEqual(
      diff.entries.map((e) => [e.name, e.kind, e.parentSubtree, e.sameMeta]),
      [['sub', 'dir', SUBTREE, true]],
      'identical files and symlinks are left out; the subdirectory is always there',
    );
  });

  test('changed, new and removed entries are named, each changed one marked as existing before', async () => {
    const { dir, parent } = await fixture('changed');
    await appendFile(join(dir, 'b.txt'), 'more\n');
    await rm(join(dir, 'c.txt'));
    await writeFile(join(dir, 'd.txt'), 'delta\n');
    await chmod(join(dir, 'a.txt'), 0o600);
    await rm(join(dir, 'link'));
    await symlink('b.txt', join(dir, 'link'));
    await chmod(join(dir, 'sub'), 0o700);
    const diff = diffDirectory(dir, parent, context(allIds));
    assert.deepEqual(diff.removed, ['c.txt']);
    assert.equal(diff.sameFiles, 0);
    assert.deepEqual(
      diff.entries.map((e) => [e.name, e.existed ?? null, e.sameMeta ?? null]),
      [
        ['a.txt', true, null],
        ['b.txt', true, null],
        ['d.txt', null, null],
        ['link', true, null],
        ['sub', null, false],
      ],
      'in name order',
    );
  });

  test('a file whose content the vault lacks is read again, though its metadata matches', async () => {
    const { dir, parent } = await fixture('lost-blob');
    const diff = diffDirectory(dir, parent, context([sha(contents.get('a.txt')!)]));
    assert.equal(diff.sameFiles, 1);
    assert.deepEqual(
      diff.entries.map((e) => e.name),
      ['b.txt', 'c.txt', 'sub'],
    );
  });

  test('a parent tree that fails authentication is named, and every entry comes back', async () => {
    const { dir, parent } = await fixture('corrupt');
    const sealed = new Uint8Array(parent.sealed);
    sealed[sealed.length - 5]! ^= 0xff;
    const diff = diffDirectory(dir, { ...parent, sealed }, context(allIds));
    assert.match(diff.parentError ?? '', /fails authentication/);
    assert.equal(diff.sameFiles, 0);
    assert.deepEqual(diff.entries.map((e) => e.name).sort(), ['a.txt', 'b.txt', 'c.txt', 'link', 'sub']);
  });

  test('a directory that cannot be listed gives its errno and nothing else', async () => {
    const { parent } = await fixture('listed-then-gone');
    const diff = diffDirectory(join(work, 'no-such-dir'), parent, context(allIds));
    assert.equal(diff.error, 'ENOENT');
    assert.deepEqual(diff.entries, []);
  });

  test('a built tree is byte for byte what encodeTree makes of the same nodes, sealed', async () => {
    const { parent, nodes } = await fixture('built');
    const changedB: TreeNode = { ...nodes.find((n) => n.name === 'b.txt')!, size: 10, content: [sha('x')] };
    const added: TreeNode = { ...changedB, name: 'e.txt', inode: '1' };
    const built = buildTree(parent, key, [changedB, added], ['c.txt', 'link'], 3);
    const want = encodeTree([
      ...nodes.filter((n) => !['b.txt', 'c.txt', 'link'].includes(n.name)),
      changedB,
      added,
    ]);
    assert.deepEqual(opened(built), want);
    assert.equal(built.id, sha(want));
    assert.equal(built.type, 'tree');
    assert.equal(built.uncompressedLength, want.length);
    assert.equal(buildTree(parent, key, [], [], 0).compressed, false, 'level 0: stored as is');
    assert.deepEqual(
      decodeTree(opened(built), built.id).map((n) => n.name),
      ['a.txt', 'b.txt', 'e.txt', 'sub'],
    );
  });

  test('through pool threads: many diffs in batches, each to its caller, and trees built there', async () => {
    const pool = new BlobPool(2);
    try {
      const dirs = await Promise.all(Array.from({ length: 70 }, (_, i) => fixture(`pooled-${i}`)));
      // Every fifth one changed, so the replies differ and a mix-up would show.
      await Promise.all(
        dirs.filter((_, i) => i % 5 === 0).map((d) => writeFile(join(d.dir, 'new.txt'), 'n')),
      );
      const ctx = context(allIds);
      const diffs = await Promise.all(dirs.map((d, i) => pool.diffDir(d.dir, d.parent, ctx, i === 69)));
      diffs.forEach((diff, i) => {
        assert.deepEqual(diff, diffDirectory(dirs[i]!.dir, dirs[i]!.parent, ctx), `directory ${i}`);
        assert.equal(
          diff.entries.some((e) => e.name === 'new.txt'),
          i % 5 === 0,
        );
      });
      const { parent, nodes } = dirs[0]!;
      const pooled = await pool.buildTree(parent, [nodes[0]!], ['c.txt'], ctx);
      const inline = buildTree(parent, key, [nodes[0]!], ['c.txt'], ctx.compressionLevel);
      assert.equal(pooled.id, inline.id);
      assert.deepEqual(opened(pooled), opened(inline));
    } finally {
      await pool.close();
    }
  });

  test('with no threads, diffs and tree builds run inline', async () => {
    const pool = new BlobPool(0);
    const { dir, parent } = await fixture('inline');
    const ctx = context(allIds);
    assert.deepEqual(await pool.diffDir(dir, parent, ctx), diffDirectory(dir, parent, ctx));
    assert.equal((await pool.buildTree(parent, [], [], ctx)).id, parent.id);
  });
});
