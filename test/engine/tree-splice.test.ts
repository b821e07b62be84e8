/**
 * spliceTree (src/engine/tree/tree.ts): a changed directory's tree made by copying the parent's
 * bytes for the nodes kept must be exactly encodeTree of the merged nodes (the tree id depends on
 * it), for awkward names too, and must give up (null) on a tree not laid out as encodeTree writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeTree, spliceTree, type TreeNode } from '../../src/engine/tree/tree.js';
import { AWKWARD_NAMES, sampleTreeNode } from './source-tree-fixture.js';

const NAMES = AWKWARD_NAMES;

/** What buildTree did before spliceTree: the parent's nodes merged with the changes, encoded. */
function merged(parent: TreeNode[], replace: TreeNode[], drop: Set<string>): Buffer {
  const m = new Map(parent.map((n) => [n.name, n]));
  for (const name of drop) m.delete(name);
  for (const n of replace) m.set(n.name, n);
  return encodeTree([...m.values()]);
}

describe('spliceTree', () => {
  it('equals decoding, merging and encoding, over many random changes', () => {
    for (let round = 0; round < 300; round++) {
      const names = [
        ...new Set(
          Array.from(
            { length: round % 40 },
            (_, i) => `${NAMES[i % NAMES.length]}-${(i * 7919 + round) % 97}`,
          ),
        ),
      ];
      const parent = names.map((n, i) => sampleTreeNode(n, i + round));
      const replace: TreeNode[] = [];
      const drop = new Set<string>();
      for (const [i, n] of parent.entries()) {
        if ((i + round) % 3 === 0) replace.push({ ...n, size: n.size + 1 });
        else if ((i + round) % 5 === 1) drop.add(n.name);
      }
      // New names before, between and after the parent's, and a dropped name that comes back.
      for (const extra of ['', '~last', `${NAMES[round % NAMES.length]}-new`])
        replace.push(sampleTreeNode(extra || '!first', round));
      if (drop.size > 0) replace.push(sampleTreeNode([...drop][0]!, 999));
      const bytes = encodeTree(parent);
      const spliced = spliceTree(bytes, replace, drop);
      assert.ok(spliced, `round ${round}: the tree encodeTree wrote can be spliced`);
      assert.equal(
        spliced.toString('utf8'),
        merged(parent, replace, drop).toString('utf8'),
        `round ${round}`,
      );
    }
  });

  it('with nothing to change gives the parent’s bytes back', () => {
    const bytes = encodeTree(NAMES.map((n, i) => sampleTreeNode(n, i)));
    assert.deepEqual(spliceTree(bytes, [], new Set()), bytes);
    assert.deepEqual(spliceTree(encodeTree([]), [], new Set()), encodeTree([]));
  });

  it('gives up on a tree that is not laid out as encodeTree writes it', () => {
    const nodes = NAMES.map((n, i) => sampleTreeNode(n, i));
    const unsorted = Buffer.from(JSON.stringify({ nodes: [nodes[1], nodes[0]] }));
    const nameNotFirst = Buffer.from(JSON.stringify({ nodes: [{ type: 'file', ...nodes[0] }] }));
    const otherWrapper = Buffer.from(JSON.stringify({ version: 1, nodes }));
    const truncated = encodeTree(nodes).subarray(0, 200);
    for (const bytes of [unsorted, nameNotFirst, otherWrapper, truncated, Buffer.from('{"nodes":[]')]) {
      assert.equal(
        spliceTree(bytes, [sampleTreeNode('x', 1)], new Set(['a'])),
        null,
        bytes.toString().slice(0, 60),
      );
    }
  });
});
