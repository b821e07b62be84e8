import { CofferError } from '../../errors/coffer-error.js';
import { discard, threadRecycler } from '../buffer-recycler.js';

export type NodeType = 'file' | 'dir' | 'symlink';

/**
 * One directory entry inside a tree blob. Times are nanoseconds since the epoch as decimal strings
 * (what a bigint lstat gives; JSON numbers cannot hold them), inode likewise because 64-bit inode
 * numbers exceed 2^53 on some filesystems.
 */
export interface TreeNode {
  name: string;
  type: NodeType;
  mode: number;
  mtimeNs: string;
  ctimeNs: string;
  size: number;
  uid: number;
  gid: number;
  inode: string;
  linkTarget?: string;
  /** Data blob ids, in file order (files only). */
  content?: string[];
  /** Tree blob id (directories only). */
  subtree?: string;
}

/** Code-unit order: deterministic, so the same directory always yields the same tree id. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function encodeTree(nodes: TreeNode[]): Buffer {
  const sorted = [...nodes].sort((a, b) => compareNames(a.name, b.name));
  return Buffer.from(JSON.stringify({ nodes: sorted }), 'utf8');
}

const TREE_PREFIX_TEXT = '{"nodes":[';
const TREE_SUFFIX_TEXT = ']}';
/** Bytes a TreeWriter starts with: most directories' trees fit. */
const WRITER_START_BYTES = 16 * 1024;

/**
 * encodeTree's bytes, written node by node as a directory's nodes become known, in name order.
 * Why: a new directory's nodes used to wait in memory until its last entry was backed up, and
 * then became one JSON string and a copy of it in a buffer; the small benchmark tree's largest
 * directory (18,000 files) held 7-8 MB of nodes during its walk and then 10 MB more for its 5 MB
 * tree, the main thread's peak. Written as they come, a node is garbage at once and only the
 * tree's bytes stay, off the heap. The bytes are the same as encodeTree's (JSON has no
 * whitespace here), so every tree id is too.
 */
export class TreeWriter {
  private buf: Buffer = Buffer.allocUnsafeSlow(WRITER_START_BYTES);
  private length = 0;
  private previous: string | null = null;

  constructor() {
    this.append(TREE_PREFIX_TEXT);
  }

  /** Nodes come in strictly increasing name order (compareNames), as encodeTree sorts them. */
  add(node: TreeNode): void {
    if (this.previous !== null && compareNames(this.previous, node.name) >= 0) {
      throw new Error(
        `tree writer: ${JSON.stringify(node.name)} is not after ${JSON.stringify(this.previous)}`,
      );
    }
    if (this.previous !== null) this.append(',');
    this.previous = node.name;
    this.append(JSON.stringify(node));
  }

  /**
   * The tree's bytes; the writer takes no more nodes. A large tree's buffer is the recycler's
   * (buffer-recycler.ts), so it moves to a pool thread whole, without a copy (wholeBuffer).
   */
  finish(): Buffer {
    this.append(TREE_SUFFIX_TEXT);
    return this.buf.subarray(0, this.length);
  }

  private append(text: string): void {
    // UTF-8 takes at most three bytes per UTF-16 code unit.
    if (this.length + text.length * 3 > this.buf.length) {
      this.grow(this.length + Buffer.byteLength(text, 'utf8'));
    }
    this.length += this.buf.write(text, this.length, 'utf8');
  }

  private grow(need: number): void {
    if (need <= this.buf.length) return;
    const old = this.buf;
    const bigger = threadRecycler.take(Math.max(need, 2 * old.length));
    old.copy(bigger, 0, 0, this.length);
    // Freed at once rather than kept: a tree this size comes once per large directory, and
    // kept, the smaller buffers it grew through would sit beside it at its peak. Every buffer
    // here has an ArrayBuffer of its own (allocUnsafeSlow, or the recycler's).
    discard(old.buffer as ArrayBuffer);
    this.buf = bigger;
  }
}

const TREE_PREFIX = Buffer.from(TREE_PREFIX_TEXT);
const TREE_SUFFIX = Buffer.from(TREE_SUFFIX_TEXT);
/** How every node encodeTree writes starts: its name is its first key. */
const NODE_PREFIX = Buffer.from('{"name":"');
const COMMA = Buffer.from(',');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * encodeTree of `parent`'s nodes with those named in `drop` removed and `replace` put in (a
 * node of `replace` wins over the parent's of its name), made by copying the parent's bytes
 * for every node kept: byte for byte what decoding, merging and encoding would give, without an
 * object per node. Why: the tree of a large directory with a few changed files (18,000 entries,
 * 5 MB) took a thread 70-100 ms to decode and encode again, most of a 1 % backup's tail, and its
 * objects were the peak of the thread's heap. Null when `parent` is not laid out as encodeTree
 * writes trees (nodes in name order, each an object without nested objects that starts with its
 * name): the caller then decodes it.
 *
 * It works on the UTF-8 bytes: JSON's structure is ASCII and no byte of a multi-byte character
 * is, and inside a string every quote is escaped, so a byte scan finds each node's extent.
 */
export function spliceTree(
  parent: Buffer,
  replace: readonly TreeNode[],
  drop: ReadonlySet<string>,
): Buffer | null {
  const end = parent.length - TREE_SUFFIX.length;
  if (
    parent.length < TREE_PREFIX.length + TREE_SUFFIX.length ||
    parent.compare(TREE_PREFIX, 0, TREE_PREFIX.length, 0, TREE_PREFIX.length) !== 0 ||
    parent.compare(TREE_SUFFIX, 0, TREE_SUFFIX.length, end) !== 0
  ) {
    return null;
  }
  const incoming = [...replace].sort((a, b) => compareNames(a.name, b.name));
  const pieces: Buffer[] = [];
  const emit = (piece: Buffer) => {
    if (pieces.length > 0) pieces.push(COMMA);
    pieces.push(piece);
  };
  const emitNode = (n: TreeNode) => emit(Buffer.from(JSON.stringify(n), 'utf8'));
  // Kept parent nodes in a row are copied as one range (from keptFrom to keptTo, commas included).
  let keptFrom = -1;
  let keptTo = -1;
  const flushKept = () => {
    if (keptFrom >= 0) emit(parent.subarray(keptFrom, keptTo));
    keptFrom = -1;
  };
  let next = 0;
  let previous: string | null = null;
  let at = TREE_PREFIX.length;
  while (at < end) {
    if (
      at + NODE_PREFIX.length > end ||
      parent.compare(NODE_PREFIX, 0, NODE_PREFIX.length, at, at + NODE_PREFIX.length) !== 0
    ) {
      return null;
    }
    // The name: up to the first unescaped quote.
    const nameAt = at + NODE_PREFIX.length;
    let i = nameAt;
    let escaped = false;
    for (; i < end; i++) {
      const c = parent[i]!;
      if (c === BACKSLASH) {
        escaped = true;
        i++;
      } else if (c === QUOTE) break;
    }
    if (i >= end) return null;
    const name = escaped
      ? (JSON.parse(parent.toString('utf8', nameAt - 1, i + 1)) as string)
      : parent.toString('utf8', nameAt, i);
    // The rest of the node: strings skipped, and no nested object.
    let j = i + 1;
    for (; j < end; j++) {
      const c = parent[j]!;
      if (c === QUOTE) {
        for (j++; j < end && parent[j] !== QUOTE; j++) if (parent[j] === BACKSLASH) j++;
      } else if (c === 0x7b /* { */) return null;
      else if (c === 0x7d /* } */) break;
    }
    if (j >= end) return null;
    const nodeEnd = j + 1;
    if (previous !== null && compareNames(previous, name) >= 0) return null;
    previous = name;
    while (next < incoming.length && compareNames(incoming[next]!.name, name) < 0) {
      flushKept();
      emitNode(incoming[next++]!);
    }
    if (next < incoming.length && incoming[next]!.name === name) {
      flushKept();
      emitNode(incoming[next++]!);
    } else if (drop.has(name)) {
      flushKept();
    } else {
      if (keptFrom < 0) keptFrom = at;
      keptTo = nodeEnd;
    }
    at = nodeEnd;
    if (at < end && parent[at++] !== 0x2c /* , */) return null;
  }
  flushKept();
  while (next < incoming.length) emitNode(incoming[next++]!);
  return Buffer.concat([TREE_PREFIX, ...pieces, TREE_SUFFIX]);
}

const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^-?[0-9]+$/;

/** Checks the shape of a decoded tree; names are judged separately (see isSafeName). */
export function decodeTree(bytes: Buffer, treeId: string): TreeNode[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CofferError('RepositoryCorrupt', `tree ${treeId} does not parse`, { treeId }, { cause: err });
  }
  const nodes = (parsed as { nodes?: unknown } | null)?.nodes;
  if (!Array.isArray(nodes)) {
    throw new CofferError('RepositoryCorrupt', `tree ${treeId} has no node list`, { treeId });
  }
  for (const raw of nodes) {
    const n = raw as Partial<TreeNode> | null;
    const ok =
      !!n &&
      typeof n.name === 'string' &&
      (n.type === 'file' || n.type === 'dir' || n.type === 'symlink') &&
      Number.isInteger(n.mode) &&
      typeof n.mtimeNs === 'string' &&
      DECIMAL.test(n.mtimeNs) &&
      Number.isInteger(n.size) &&
      (n.type !== 'file' ||
        (Array.isArray(n.content) && n.content.every((c) => typeof c === 'string' && HEX64.test(c)))) &&
      (n.type !== 'dir' || (typeof n.subtree === 'string' && HEX64.test(n.subtree))) &&
      (n.type !== 'symlink' || typeof n.linkTarget === 'string');
    if (!ok) {
      throw new CofferError('RepositoryCorrupt', `tree ${treeId} has a malformed node`, {
        treeId,
        name: typeof n?.name === 'string' ? n.name : undefined,
      });
    }
  }
  return nodes as TreeNode[];
}

/**
 * A node name may become one path component and nothing else: anything that could climb out of,
 * or reach across, the restore target is refused.
 */
export function isSafeName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
