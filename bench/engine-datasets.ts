/**
 * The engine benchmark's datasets: copies of real system trees under bench/.data/ (git-ignored),
 * so the 1 %-change scenario can modify files without touching the system. A `scale` below 1
 * keeps an even, deterministic sample of the files (by a hash of each path), not a prefix.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  writeFileSync,
} from 'node:fs';
import { run } from './engine-run.js';
import {
  copyFile,
  chmod,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rm,
  symlink,
  utimes,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';

export type TreeName = 'large' | 'small';

export const TREE_SOURCES: Record<TreeName, string[]> = {
  large: ['/usr/lib/jvm', '/usr/lib/x86_64-linux-gnu', '/usr/share/doc'],
  small: ['/usr/lib/python3', '/usr/lib/python3.11', '/usr/share/locale', '/usr/share/man'],
};

export interface SourceSummary {
  path: string;
  present: boolean;
  files: number;
  bytes: number;
}

export interface Manifest {
  name: TreeName;
  scale: number;
  /** The dataset's directory: what every tool backs up. */
  root: string;
  sources: SourceSummary[];
  files: number;
  bytes: number;
  symlinks: number;
  dirs: number;
  /** Entries that are neither files, directories nor symlinks (sockets, devices), or unreadable. */
  skipped: number;
  /** Regular files, relative to root, sorted: the 1 %-change scenario picks from these. */
  regular: { path: string; size: number }[];
}

function sampled(rel: string, scale: number): boolean {
  if (scale >= 1) return true;
  return createHash('sha1').update(rel).digest().readUInt32BE(0) / 2 ** 32 < scale;
}

/** Builds (or reuses, when its manifest matches) the dataset copy of one tree. */
export async function buildDataset(
  name: TreeName,
  scale: number,
  dataDir: string,
  log: (s: string) => void,
): Promise<Manifest> {
  const tag = `${name}-s${scale}`;
  const root = join(dataDir, 'datasets', tag);
  const manifestFile = join(dataDir, 'datasets', `${tag}.json`);
  if (existsSync(manifestFile) && existsSync(root)) {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    if (
      m.root === root &&
      m.scale === scale &&
      m.sources.map((s) => s.path).join() === TREE_SOURCES[name].join()
    ) {
      log(`dataset ${tag}: reusing ${root} (${m.files} files, ${(m.bytes / 1e6).toFixed(0)} MB)`);
      return m;
    }
  }
  log(`dataset ${tag}: copying ${TREE_SOURCES[name].join(', ')} (scale ${scale}) into ${root}`);
  await rm(root, { recursive: true, force: true });
  await rm(manifestFile, { force: true });
  const m: Manifest = {
    name,
    scale,
    root,
    sources: [],
    files: 0,
    bytes: 0,
    symlinks: 0,
    dirs: 0,
    skipped: 0,
    regular: [],
  };
  for (const src of TREE_SOURCES[name]) {
    const summary: SourceSummary = { path: src, present: existsSync(src), files: 0, bytes: 0 };
    m.sources.push(summary);
    if (!summary.present) continue;
    const rel = src.replace(/^\/+/, '');
    if (scale >= 1) {
      // The whole tree: cp -a is fast and keeps modes, times and symlinks; then list what it copied.
      await mkdir(dirname(join(root, rel)), { recursive: true });
      await run('cp', ['-a', src, dirname(join(root, rel))]);
      listTree(join(root, rel), rel, m, summary);
    } else {
      await copyTree(src, rel, root, scale, m, summary);
    }
  }
  m.regular.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  writeFileSync(manifestFile, JSON.stringify(m));
  log(
    `dataset ${tag}: ${m.files} files, ${(m.bytes / 1e6).toFixed(0)} MB, ${m.symlinks} symlinks, ${m.dirs} dirs`,
  );
  return m;
}

/** Counts one regular file of a dataset in its manifest and in its source's summary. */
function countFile(m: Manifest, summary: SourceSummary, rel: string, size: number): void {
  m.files++;
  m.bytes += size;
  summary.files++;
  summary.bytes += size;
  m.regular.push({ path: rel, size });
}

function listTree(abs: string, rel: string, m: Manifest, summary: SourceSummary): void {
  const st = lstatSync(abs);
  if (st.isDirectory()) {
    m.dirs++;
    for (const n of readdirSync(abs).sort()) listTree(join(abs, n), join(rel, n), m, summary);
  } else if (st.isSymbolicLink()) {
    m.symlinks++;
  } else if (st.isFile()) {
    countFile(m, summary, rel, st.size);
  } else {
    m.skipped++;
  }
}

async function copyTree(
  abs: string,
  rel: string,
  root: string,
  scale: number,
  m: Manifest,
  summary: SourceSummary,
): Promise<void> {
  const st = await lstat(abs);
  const dst = join(root, rel);
  if (st.isDirectory()) {
    await mkdir(dst, { recursive: true });
    m.dirs++;
    let names: string[];
    try {
      names = (await readdir(abs)).sort();
    } catch {
      m.skipped++;
      return;
    }
    for (const n of names) await copyTree(join(abs, n), join(rel, n), root, scale, m, summary);
    await chmod(dst, st.mode & 0o7777);
    return;
  }
  if (!sampled(rel, scale)) return;
  if (st.isSymbolicLink()) {
    await mkdir(dirname(dst), { recursive: true });
    await symlink(await readlink(abs), dst);
    m.symlinks++;
  } else if (st.isFile()) {
    try {
      await copyFile(abs, dst);
    } catch {
      m.skipped++;
      return;
    }
    await chmod(dst, st.mode & 0o7777);
    await utimes(dst, st.atime, st.mtime);
    countFile(m, summary, rel, st.size);
  } else {
    m.skipped++;
  }
}

export interface Change {
  files: number;
  bytes: number;
  revert(): Promise<void>;
}

/**
 * Changes 1 % of the regular files (every 100th non-empty one, shifted by `round`): overwrites
 * up to 4 KiB in the middle of each with random bytes. `revert` writes the original bytes back,
 * so every tool of a round starts from the same content.
 */
export async function changeOnePercent(m: Manifest, round: number): Promise<Change> {
  const candidates = m.regular.filter((f) => f.size > 0);
  const picked = candidates.filter((_, i) => (i + round) % 100 === 0);
  const saved: { path: string; offset: number; original: Buffer }[] = [];
  let bytes = 0;
  for (const f of picked) {
    const path = join(m.root, f.path);
    const len = Math.min(4096, f.size);
    const offset = Math.max(0, Math.floor(f.size / 2) - Math.floor(len / 2));
    const fh = await open(path, 'r+');
    try {
      const original = Buffer.alloc(len);
      await fh.read(original, 0, len, offset);
      await fh.write(randomBytes(len), 0, len, offset);
      saved.push({ path, offset, original });
      bytes += f.size;
    } finally {
      await fh.close();
    }
  }
  return {
    files: picked.length,
    bytes,
    async revert() {
      for (const s of saved) {
        const fh = await open(s.path, 'r+');
        try {
          await fh.write(s.original, 0, s.original.length, s.offset);
        } finally {
          await fh.close();
        }
      }
    },
  };
}

/**
 * Reads every file of the dataset once, one file at a time, with synchronous reads into one
 * reused buffer (as the engine's reading threads do; promise-based reads cost about 150 µs per
 * file here, which made a 30,000-file tree look 20× slower to read than it is); returns bytes
 * per second. It also brings the whole dataset into the page cache.
 */
export function readThroughput(m: Manifest): number {
  const buf = Buffer.allocUnsafeSlow(4 * 1024 * 1024);
  let total = 0;
  const started = performance.now();
  for (const f of m.regular) {
    const fd = openSync(join(m.root, f.path), 'r');
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        total += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return total / ((performance.now() - started) / 1000);
}

/** Counts regular files and their bytes under a restore target (whatever prefix a tool adds). */
export async function countTree(dir: string): Promise<{ files: number; bytes: number; symlinks: number }> {
  const out = { files: 0, bytes: 0, symlinks: 0 };
  const walk = async (p: string): Promise<void> => {
    for (const e of await readdir(p, { withFileTypes: true })) {
      const full = join(p, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isSymbolicLink()) out.symlinks++;
      else if (e.isFile()) {
        out.files++;
        out.bytes += (await lstat(full)).size;
      }
    }
  };
  await walk(dir);
  return out;
}

/** Bytes of all files under a directory (apparent sizes): a repository's size. */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    for (const e of await readdir(p, { withFileTypes: true })) {
      const full = join(p, e.name);
      if (e.isDirectory()) await walk(full);
      else total += (await lstat(full)).size;
    }
  };
  await walk(dir);
  return total;
}
