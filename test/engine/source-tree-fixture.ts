// Builds real source trees for engine tests: part of /usr/share/doc plus the awkward cases a
// backup tool must survive. Lives under test/, so `node --test` loads it too; it defines no tests.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import { Repository } from '../../src/engine/index.js';
import type { ReadContext } from '../../src/engine/parallel/file-work.js';
import { KnownBlobFilter } from '../../src/engine/parallel/known-filter.js';
import type { TreeNode } from '../../src/engine/tree/tree.js';

export const TEST_SCRYPT = { N: 1024, r: 8, p: 1 };
/** Small chunks and packs so a few MiB of test data exercise multi-chunk files and many packs. */
export const TEST_CHUNKER = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 };
export const TEST_PACK_SIZE = 1024 * 1024;

/** A pool thread's read context for the test chunker, whose known-blob filter holds `knownIds`. */
export function testReadContext(key: Buffer, gear: Int32Array, knownIds: string[] = []): ReadContext {
  return {
    key,
    gear,
    chunker: TEST_CHUNKER,
    compressionLevel: 3,
    known: KnownBlobFilter.build(knownIds, knownIds.length).table,
  };
}

export async function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `coffer-${label}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A new test repository in a local directory, or on any backend (test/support/backends.ts). */
export async function newRepository(
  where: string | Backend,
  password = 'correct horse',
): Promise<Repository> {
  return Repository.init(typeof where === 'string' ? new LocalBackend(where) : where, password, {
    scrypt: TEST_SCRYPT,
    chunker: TEST_CHUNKER,
    packSize: TEST_PACK_SIZE,
  });
}

const DOC_DIRS = ['git', 'apt', 'bash', 'dpkg', 'coreutils', 'curl', 'base-files', 'debconf'];

/** Copies a few /usr/share/doc packages (real text, gzip files, symlinks) into `dest`. */
export function copyRealDocs(dest: string, dirs = DOC_DIRS): void {
  const present = dirs.filter((d) => existsSync(join('/usr/share/doc', d)));
  if (present.length === 0) return;
  const r = spawnSync('cp', ['-a', ...present.map((d) => join('/usr/share/doc', d)), dest]);
  if (r.status !== 0) throw new Error(`cp failed: ${r.stderr.toString()}`);
}

/** Symlinks (relative, absolute, dangling), empty dirs, unicode names, odd modes, empty and big files. */
export async function addAwkwardCases(root: string): Promise<void> {
  const odd = join(root, 'odd');
  await mkdir(join(odd, 'empty-dir', 'nested-empty'), { recursive: true });
  await writeFile(join(odd, 'empty-file'), '');
  await writeFile(join(odd, 'café-nfc.txt'), 'composed é\n');
  await writeFile(join(odd, 'cafe\u0301-nfd.txt'), 'decomposed é\n');
  await writeFile(join(odd, '日本語 ファイル 🎉.txt'), 'unicode\n');
  await writeFile(join(odd, 'spaces and\ttab'), 'x');
  await writeFile(join(odd, 'mode-751'), '#!/bin/sh\necho hi\n');
  await chmod(join(odd, 'mode-751'), 0o751);
  await writeFile(join(odd, 'mode-400'), 'read only');
  await chmod(join(odd, 'mode-400'), 0o400);
  await mkdir(join(odd, 'dir-700'));
  await writeFile(join(odd, 'dir-700', 'inside'), 'private');
  await chmod(join(odd, 'dir-700'), 0o700);
  await mkdir(join(odd, 'sticky'));
  await chmod(join(odd, 'sticky'), 0o1777);
  await symlink('mode-751', join(odd, 'link-relative'));
  await symlink('/etc/hostname', join(odd, 'link-absolute'));
  await symlink('does/not/exist', join(odd, 'link-dangling'));
  await symlink('empty-dir', join(odd, 'link-to-dir'));
  // Larger than the test max chunk (256 KiB): random and compressible halves.
  const big = Buffer.concat([
    randomBytes(700 * 1024),
    Buffer.alloc(600 * 1024, 'compressible line of text\n'),
  ]);
  await writeFile(join(odd, 'big.bin'), big);
  await utimes(join(odd, 'big.bin'), 1_000_000_000.123, 1_000_000_000.123);
}

export interface EntryFacts {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  mtimeMs: number;
  size: number;
  linkTarget?: string;
}

/** lstat facts of every entry below `root`, keyed by relative path (never follows symlinks). */
export async function describeTree(root: string): Promise<Map<string, EntryFacts>> {
  const out = new Map<string, EntryFacts>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const abs = join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(abs);
      const type = st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : 'other';
      const facts: EntryFacts = {
        type,
        mode: st.mode & 0o7777,
        mtimeMs: Math.floor(st.mtimeMs),
        size: type === 'file' ? st.size : 0,
      };
      if (type === 'symlink') facts.linkTarget = await readlink(abs);
      out.set(r, facts);
      if (type === 'dir') await walk(abs, r);
    }
  };
  await walk(root, '');
  return out;
}

/** `diff -r` without following symlinks; returns its output ('' when identical). */
/** Commits a backup's snapshot, restores it into `target` and fails unless that equals `source`. */
export async function commitAndRestore(
  repo: Repository,
  snapshotId: string,
  source: string,
  target: string,
): Promise<void> {
  await repo.commitSnapshot(snapshotId);
  await repo.restore({ snapshotId, target });
  const diff = diffTrees(source, target);
  if (diff !== '') throw new Error(`the restore differs from the source:\n${diff}`);
}

export function diffTrees(a: string, b: string): string {
  const r = spawnSync('diff', ['-r', '--no-dereference', a, b]);
  return r.stdout.toString() + r.stderr.toString() + (r.status === 0 ? '' : `(exit ${r.status})`);
}

/** Names that JSON must escape or encode in several bytes, for tree encoding tests. */
export const AWKWARD_NAMES = [
  'a',
  'b',
  'é',
  'Z',
  'with "quotes"',
  'back\\slash',
  'tab\there',
  '{brace}',
  '[x]',
  '日本',
  '😀',
];

/**
 * A tree node of every type for tree encoding tests, chosen by `i`: every fifth a directory,
 * every seventh a symlink whose target looks like JSON, the rest files of 0-3 random blob ids.
 */
export function sampleTreeNode(name: string, i: number): TreeNode {
  const base = {
    name,
    mode: 0o100644,
    mtimeNs: `${1_700_000_000_000_000_000n + BigInt(i)}`,
    ctimeNs: '1700000000000000000',
    size: i * 1000,
    uid: 0,
    gid: 0,
    inode: `${i}`,
  };
  if (i % 5 === 0) return { ...base, type: 'dir', subtree: randomBytes(32).toString('hex') };
  if (i % 7 === 0) return { ...base, type: 'symlink', linkTarget: `../${name}/{"x":[1]}` };
  return {
    ...base,
    type: 'file',
    content: Array.from({ length: i % 4 }, () => randomBytes(32).toString('hex')),
  };
}
