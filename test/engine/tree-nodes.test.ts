/**
 * The tree nodes a backup builds (archiver/tree-nodes.ts): the JSON the tree format stores, and
 * one V8 hidden class for every node of a type, whatever shape of listing entry it came from.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { nodeOf } from '../../src/engine/archiver/tree-nodes.js';
import type { ScannedEntry } from '../../src/engine/parallel/file-work.js';

const entry: ScannedEntry = {
  name: 'a',
  kind: 'file',
  mode: 0o644,
  mtimeNs: '1700000000123456789',
  ctimeNs: '1700000000223456789',
  size: 12,
  uid: 1000,
  gid: 100,
  inode: '42',
};

describe('tree nodes', () => {
  it('hold the metadata and the field of their type, in the tree format’s order', () => {
    assert.equal(
      JSON.stringify(nodeOf(entry, 'file', { size: 10, content: ['c1', 'c2'] })),
      '{"name":"a","type":"file","mode":420,"mtimeNs":"1700000000123456789","ctimeNs":"1700000000223456789",' +
        '"size":10,"uid":1000,"gid":100,"inode":"42","content":["c1","c2"]}',
    );
    const link = nodeOf({ ...entry, kind: 'symlink', size: 0 }, 'symlink', { linkTarget: 'b' });
    assert.deepEqual(Object.keys(link).slice(-2), ['inode', 'linkTarget']);
    assert.equal(link.linkTarget, 'b');
    const dir = nodeOf({ ...entry, kind: 'dir', size: 0 }, 'dir', { subtree: 't' });
    assert.deepEqual(Object.keys(dir).slice(-2), ['inode', 'subtree']);
    assert.equal(dir.size, 0);
  });

  it('share one hidden class per type, from entries of many shapes', () => {
    // Entries arrive from listings, diffs (with extra fields) and structured clones; a node made
    // by spreading one and adding fields got a hidden class of its own from such a mix.
    const script = `
      import { nodeOf } from ${JSON.stringify(new URL('../../src/engine/archiver/tree-nodes.js', import.meta.url).href)};
      const base = (n) => ({ name: 'f' + n, kind: 'file', mode: 420, mtimeNs: String(n), ctimeNs: '2', size: n, uid: 0, gid: 0, inode: String(n) });
      const shapes = [
        base,
        (n) => ({ ...base(n), existed: true }),
        (n) => ({ ...base(n), error: undefined }),
        (n) => ({ ...base(n), parentSubtree: null, sameMeta: false }),
        (n) => JSON.parse(JSON.stringify(base(n))),
        (n) => structuredClone({ ...base(n), existed: true }),
      ];
      const made = { file: [], symlink: [], dir: [] };
      for (let i = 0; i < 600; i++) {
        const e = shapes[i % shapes.length](i);
        made.file.push(nodeOf(e, 'file', { size: i, content: ['x'] }));
        made.symlink.push(nodeOf(e, 'symlink', { linkTarget: 't' + i }));
        made.dir.push(nodeOf(e, 'dir', { subtree: 's' + i }));
      }
      const shared = {};
      for (const [type, nodes] of Object.entries(made)) shared[type] = nodes.filter((n) => %HaveSameMap(n, nodes[0])).length;
      console.log(JSON.stringify(shared));
    `;
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    );
    assert.deepEqual(JSON.parse(out), { file: 600, symlink: 600, dir: 600 });
  });
});
