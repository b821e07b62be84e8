/**
 * TreeWriter (src/engine/tree/tree.ts) and StreamedTree (src/engine/archiver/streamed-tree.ts):
 * a new directory's tree written node by node as its entries finish must be byte for byte what
 * encodeTree makes of the same nodes (the tree id depends on it), whatever order the entries
 * finish in and however long subdirectories take, and a subdirectory that fails fails the tree.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EntryResult, StreamedTree } from '../../src/engine/archiver/streamed-tree.js';
import { compareNames, encodeTree, type TreeNode, TreeWriter } from '../../src/engine/tree/tree.js';
import { isRecycledSize, wholeBuffer } from '../../src/engine/buffer-recycler.js';
import { AWKWARD_NAMES, sampleTreeNode } from './source-tree-fixture.js';

const NAMES = [...AWKWARD_NAMES, 'x'.repeat(200)];

/** `count` nodes with distinct awkward names, in name order. */
function sortedNodes(count: number, seed = 0): TreeNode[] {
  const names = new Set<string>();
  for (let i = 0; names.size < count; i++) names.add(`${NAMES[(i + seed) % NAMES.length]}-${i}`);
  return [...names].sort(compareNames).map((n, i) => sampleTreeNode(n, i + seed));
}

function written(nodes: readonly TreeNode[]): Buffer {
  const w = new TreeWriter();
  for (const n of nodes) w.add(n);
  return w.finish();
}

/** A random permutation of 0..n-1. */
function shuffled(n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

describe('TreeWriter', () => {
  it('writes exactly what encodeTree makes of the same nodes, from none to thousands', () => {
    for (const count of [0, 1, 2, 3, 10, 37, 200, 5000]) {
      const nodes = sortedNodes(count, count);
      const bytes = written(nodes);
      assert.ok(bytes.equals(encodeTree(nodes)), `${count} nodes`);
    }
  });

  it('hands a large tree over in a pooled buffer that starts it, a small one in a buffer of its own', () => {
    const large = written(sortedNodes(3000));
    assert.ok(large.length > 64 * 1024);
    assert.equal(isRecycledSize(large.buffer.byteLength), true);
    assert.equal(large.byteOffset, 0);
    // So it moves to a pool thread whole; a small one is copied out of its larger buffer.
    assert.equal(wholeBuffer(large), large.buffer);
    const small = written(sortedNodes(3));
    assert.equal(isRecycledSize(small.buffer.byteLength), false);
    assert.notEqual(wholeBuffer(small), small.buffer);
  });

  it('refuses a node out of name order or a name twice', () => {
    const [a, b] = sortedNodes(2);
    const w = new TreeWriter();
    w.add(b!);
    assert.throws(() => w.add(a!), /is not after/);
    const twice = new TreeWriter();
    twice.add(a!);
    assert.throws(() => twice.add(a!), /is not after/);
  });
});

describe('StreamedTree', () => {
  it('equals encodeTree of the nodes kept, whatever order entries finish and subdirectories seal in', async () => {
    for (let round = 0; round < 40; round++) {
      const nodes = sortedNodes(1 + ((round * 13) % 120), round);
      const skipped = new Set(nodes.map((_, i) => i).filter((i) => (i + round) % 9 === 0));
      const tree = new StreamedTree(nodes.length);
      const sealing: (() => void)[] = [];
      for (const i of shuffled(nodes.length)) {
        const n = nodes[i]!;
        let outcome: EntryResult | null = skipped.has(i) ? null : n;
        if (n.type === 'dir' && outcome) {
          // A subdirectory: its node comes when its tree is sealed, later and in any order.
          outcome = { sealing: new Promise<TreeNode>((resolve) => sealing.push(() => resolve(n))) };
        }
        tree.settle(i, outcome);
      }
      const result = tree.bytes();
      for (const i of shuffled(sealing.length)) {
        sealing[i]!();
        await Promise.resolve();
      }
      const bytes = await result;
      assert.ok(bytes.equals(encodeTree(nodes.filter((_, i) => !skipped.has(i)))), `round ${round}`);
    }
  });

  it('an empty directory is the empty tree', async () => {
    assert.ok((await new StreamedTree(0).bytes()).equals(encodeTree([])));
  });

  it('a subdirectory whose seal fails fails the tree with its error, and nothing is left unhandled', async () => {
    const nodes = sortedNodes(4);
    const tree = new StreamedTree(nodes.length);
    const failure = new Error('seal failed');
    const failed = Promise.reject(failure);
    failed.catch(() => undefined);
    tree.settle(0, nodes[0]!);
    tree.settle(1, { sealing: failed });
    tree.settle(2, nodes[2]!);
    tree.settle(3, nodes[3]!);
    await assert.rejects(tree.bytes(), failure);
    // Asked again, it fails the same way.
    await assert.rejects(tree.bytes(), failure);
  });

  it('refuses an entry settled twice', () => {
    const [a, b] = sortedNodes(2);
    const tree = new StreamedTree(2);
    tree.settle(1, b!);
    assert.throws(() => tree.settle(1, b!), /settled twice/);
    tree.settle(0, a!);
    assert.throws(() => tree.settle(0, a!), /settled twice/);
  });
});
