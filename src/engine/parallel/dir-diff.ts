/**
 * A directory listed and compared with its tree in the parent backup, on a pool thread, so that
 * the main thread hears only what changed.
 *
 * Why: a backup with a parent (no change, or 1 % of files changed) used to bring every listing to
 * the main thread, decode the parent's tree there and compare every entry with its old node. On
 * the 30,000-file benchmark tree that was most of the main thread's work (structured clones of
 * 30,000 entries, JSON.parse of every tree, a promise per entry, and the garbage of all three),
 * while the pool threads sat idle half the time. Here the thread opens the parent tree itself
 * (the main thread sends its sealed bytes), so an unchanged directory comes back as its
 * subdirectories and two counts.
 */
import { blobId, decodeBlob, encodeBlob, type EncodedBlob } from '../pack/blob-codec.js';
import { compareNames, decodeTree, encodeTree, spliceTree, type TreeNode } from '../tree/tree.js';
import { listNames, type ReadContext, type ScannedEntry, scanDirectory, statEntry } from './file-work.js';
import { filterHasId } from './known-filter.js';

/** A parent tree blob as the main thread found it in the index, still sealed. */
export interface SealedTree {
  id: string;
  packId: string;
  compressed: boolean;
  uncompressedLength: number;
  /** The sealed blob (a copy of its bytes in the pack). */
  sealed: Uint8Array;
}

/** A directory to diff: its path and its tree in the parent backup. */
export interface DiffRequest {
  path: string;
  tree: SealedTree;
}

/** A listed entry the main thread has to look at, with what the parent tree says of it. */
export interface DiffEntry extends ScannedEntry {
  /** Directories only: the subtree of the parent's directory of that name, or null. */
  parentSubtree?: string | null;
  /** Directories only: the parent's node of that name is a directory with the same metadata. */
  sameMeta?: boolean;
  /** Other entries: the parent tree has a node of that name (the entry changed, it is not new). */
  existed?: boolean;
}

export interface DirDiff {
  /** errno when the directory itself cannot be listed; nothing else is then set. */
  error: string | null;
  /** Names that are not valid UTF-8, as hex (see ScannedDir). */
  invalidNames: string[];
  /**
   * Why the parent tree could not be opened (corrupt or unauthentic), else null. `entries` then
   * holds every entry, as if there were no parent.
   */
  parentError: string | null;
  /**
   * Every entry that is not a file or symlink identical to the parent's node of that name (new,
   * changed, unreadable, special, a file whose content the vault may lack), and every directory:
   * the walk goes into each, and a directory's node depends on its subtree. In name order.
   */
  entries: DiffEntry[];
  /** Names in the parent tree that are not listed any more. */
  removed: string[];
  /** Files identical to the parent's node, left out of `entries`: how many, and their bytes. */
  sameFiles: number;
  sameBytes: number;
}

/** The fields of a node that lstat gives: a file whose fields all match was not touched. */
function sameMetadata(e: ScannedEntry, n: TreeNode): boolean {
  return (
    e.mtimeNs === n.mtimeNs &&
    e.ctimeNs === n.ctimeNs &&
    e.size === n.size &&
    e.inode === n.inode &&
    e.mode === n.mode &&
    e.uid === n.uid &&
    e.gid === n.gid
  );
}

/**
 * Lists `path` and compares each entry with the node of the same name in `parent`. A file counts
 * as identical only when every blob of its content is in the known-blob filter: a parent whose
 * blobs were lost (a damaged pack removed) gets those files read again. The filter holds 64 bits
 * of each id, so a lost blob whose 64 bits match a present one's would go unnoticed, a chance of
 * about one in 2^64 divided by the vault's blob count.
 */
export function diffDirectory(path: string, parent: SealedTree, context: ReadContext): DirDiff {
  const diff: DirDiff = {
    error: null,
    invalidNames: [],
    parentError: null,
    entries: [],
    removed: [],
    sameFiles: 0,
    sameBytes: 0,
  };
  let nodes: TreeNode[];
  try {
    nodes = decodeTree(decodeBlob(context.key, parent.sealed, parent, parent.packId, true), parent.id);
  } catch (err) {
    const listing = scanDirectory(path);
    return {
      ...diff,
      error: listing.error,
      invalidNames: listing.invalidNames,
      parentError: err instanceof Error ? err.message : String(err),
      entries: listing.entries,
    };
  }
  const listed = listNames(path);
  if (listed.error !== null) return { ...diff, error: listed.error };
  diff.invalidNames = listed.invalidNames;
  const before = new Map<string, TreeNode>();
  for (const n of nodes) before.set(n.name, n);
  // Each entry is compared as it is stat'ed, so an unchanged one is garbage at once: a listing
  // of 18,000 entries held whole survived into V8's old generation, and copying it there was a
  // large share of the threads' time.
  for (const name of listed.names) {
    const e = statEntry(path, name);
    const prev = before.get(name);
    before.delete(name);
    if (e.kind === 'dir') {
      const wasDir = prev?.type === 'dir';
      const sameMeta = wasDir && e.error === undefined && sameMetadata(e, prev);
      diff.entries.push({ ...e, parentSubtree: wasDir ? (prev.subtree ?? null) : null, sameMeta });
      continue;
    }
    if (prev === undefined) {
      diff.entries.push(e);
      continue;
    }
    if (e.error === undefined && prev.type === e.kind && sameMetadata(e, prev)) {
      if (e.kind === 'symlink' && e.linkTarget === prev.linkTarget) continue;
      if (e.kind === 'file' && prev.content?.every((id) => filterHasId(context.known, id))) {
        diff.sameFiles++;
        diff.sameBytes += e.size;
        continue;
      }
    }
    diff.entries.push({ ...e, existed: true });
  }
  diff.removed = [...before.keys()];
  // In the walk's order, sorted here rather than on the main thread.
  diff.entries.sort((a, b) => compareNames(a.name, b.name));
  return diff;
}

/**
 * The tree of a directory that changed since `parent`, sealed for its pack: `nodes` (what the
 * walk saved: changed and new entries, and every subdirectory) and the parent's nodes of every
 * other name, except those in `drop` (entries gone since, or skipped this time). The same bytes,
 * and so the same id, as encodeTree of all those nodes on the main thread, which it spares the
 * parent tree's opening and the new tree's encoding, hashing, compression (at `level`) and
 * sealing, and the copies of the tree to a thread and back. The tree of a large directory is
 * megabytes, so this was most of the memory a backup of a few changed files added.
 */
export function buildTree(
  parent: SealedTree,
  key: Buffer,
  nodes: TreeNode[],
  drop: readonly string[],
  level: number,
): EncodedBlob {
  const plain = decodeBlob(key, parent.sealed, parent, parent.packId, true);
  const bytes = spliceTree(plain, nodes, new Set(drop)) ?? mergeTrees(plain, parent.id, nodes, drop);
  return encodeBlob(key, 'tree', bytes, blobId(bytes), level);
}

/** buildTree's bytes the long way, for a parent tree spliceTree cannot splice. */
function mergeTrees(plain: Buffer, treeId: string, nodes: TreeNode[], drop: readonly string[]): Buffer {
  const merged = new Map<string, TreeNode>();
  for (const n of decodeTree(plain, treeId)) merged.set(n.name, n);
  for (const name of drop) merged.delete(name);
  for (const n of nodes) merged.set(n.name, n);
  return encodeTree([...merged.values()]);
}
