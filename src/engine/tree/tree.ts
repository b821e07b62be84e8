import { CofferError } from '../../errors/coffer-error.js';

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
