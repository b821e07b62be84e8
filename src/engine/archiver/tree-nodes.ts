/** Tree nodes of the entries a backup walks (archiver.ts). */
import type { ScannedEntry } from '../parallel/file-work.js';
import type { TreeNode } from '../tree/tree.js';

/**
 * The tree node of an entry: its metadata as listed, and the field of its type. Each type's
 * nodes are built as one literal with the fields always in the same order, so they share one V8
 * hidden class. Why not a node of metadata spread and completed: those got a hidden class each
 * (a Map and a DescriptorArray per file, 18,000 of them and 6 MB for the small benchmark tree's
 * largest directory), which the main thread's collector copied and JSON.stringify walked slowly.
 * The JSON of a node, and so every tree id, is the same either way.
 */
export function nodeOf(
  entry: ScannedEntry,
  type: 'file',
  extra: { size: number; content: string[] },
): TreeNode;
export function nodeOf(entry: ScannedEntry, type: 'symlink', extra: { linkTarget: string }): TreeNode;
export function nodeOf(entry: ScannedEntry, type: 'dir', extra: { subtree: string }): TreeNode;
export function nodeOf(
  e: ScannedEntry,
  type: TreeNode['type'],
  extra: { size?: number; content?: string[]; linkTarget?: string; subtree?: string },
): TreeNode {
  const { name, mode, mtimeNs, ctimeNs, uid, gid, inode } = e;
  if (type === 'file') {
    const { size, content } = extra as { size: number; content: string[] };
    return { name, type, mode, mtimeNs, ctimeNs, size, uid, gid, inode, content };
  }
  const size = e.size;
  if (type === 'symlink')
    return { name, type, mode, mtimeNs, ctimeNs, size, uid, gid, inode, linkTarget: extra.linkTarget! };
  return { name, type, mode, mtimeNs, ctimeNs, size, uid, gid, inode, subtree: extra.subtree! };
}
