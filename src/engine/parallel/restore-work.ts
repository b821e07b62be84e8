/**
 * The per-file work of a restore, done with synchronous calls on a pool thread (encode-worker.ts),
 * or inline when the pool has no threads: open (and verify) a sealed blob, create or open the
 * target file, write, and for the file's last blob set owner, times and mode, then close.
 *
 * Why here: restoring a small file through `fs/promises` took five round trips to libuv's thread
 * pool (open, write, utimes, chmod, close) plus one to a pool thread to decode its blob; one
 * request to a pool thread now does all of it, and every core shares the work.
 */
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { type BlobRef, decodeBlob } from '../pack/blob-codec.js';

export interface RestoredMetadata {
  /** Seconds since the epoch, with sub-second precision. */
  mtime: number;
  mode: number;
  /** Set only when the restore runs as root and the owner differs from the process's. */
  owner: { uid: number; gid: number } | null;
}

export interface RestoreWrite {
  path: string;
  /** The file's first write: create it afresh (an existing entry is unlinked, never written through). */
  create: boolean;
  /** The blob to write at `offset`, still sealed; none for an empty file. */
  blob: { sealed: Buffer; ref: BlobRef; packId: string; offset: number } | null;
  /** The file's last write: set its metadata before closing. */
  finish: RestoredMetadata | null;
}

export type RestoreWriteOutcome =
  | { status: 'done'; bytes: number; warning: string | null }
  /** The blob failed authentication, decompression or its hash: nothing was written. */
  | { status: 'damaged'; message: string }
  | { status: 'error'; stage: 'create' | 'exists-dir' | 'open' | 'write' | 'metadata'; errno: string };

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? String(err);
}

const CREATE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

function createFresh(path: string): number | RestoreWriteOutcome {
  try {
    return openSync(path, CREATE, 0o600);
  } catch (err) {
    if (errno(err) !== 'EEXIST') return { status: 'error', stage: 'create', errno: errno(err) };
  }
  try {
    if (lstatSync(path).isDirectory()) return { status: 'error', stage: 'exists-dir', errno: 'EISDIR' };
    unlinkSync(path);
    return openSync(path, CREATE, 0o600);
  } catch (err) {
    return { status: 'error', stage: 'create', errno: errno(err) };
  }
}

export function restoreWrite(key: Buffer, w: RestoreWrite): RestoreWriteOutcome {
  let plain: Buffer | null = null;
  if (w.blob) {
    try {
      plain = decodeBlob(key, w.blob.sealed, w.blob.ref, w.blob.packId, true);
    } catch (err) {
      // decodeBlob throws only RepositoryCorrupt: the caller counts the blob as damaged.
      return { status: 'damaged', message: (err as Error).message };
    }
  }
  let fd: number;
  if (w.create) {
    const created = createFresh(w.path);
    if (typeof created !== 'number') return created;
    fd = created;
  } else {
    try {
      fd = openSync(w.path, fsc.O_WRONLY | fsc.O_NOFOLLOW);
    } catch (err) {
      return { status: 'error', stage: 'open', errno: errno(err) };
    }
  }
  let warning: string | null = null;
  try {
    if (plain) {
      let done = 0;
      try {
        while (done < plain.length)
          done += writeSync(fd, plain, done, plain.length - done, w.blob!.offset + done);
      } catch (err) {
        return { status: 'error', stage: 'write', errno: errno(err) };
      }
    }
    const meta = w.finish;
    if (meta) {
      if (meta.owner) {
        try {
          fchownSync(fd, meta.owner.uid, meta.owner.gid);
        } catch (err) {
          warning = `cannot set owner (${errno(err)})`;
        }
      }
      try {
        // mtime after the last write, mode last (a read-only mode must not stop the times).
        futimesSync(fd, meta.mtime, meta.mtime);
        fchmodSync(fd, meta.mode);
      } catch (err) {
        return { status: 'error', stage: 'metadata', errno: errno(err) };
      }
    }
  } finally {
    closeSync(fd);
  }
  return { status: 'done', bytes: plain?.length ?? 0, warning };
}

/**
 * Directories and symlinks of a restore, in batches: each batch is one request to a pool thread
 * instead of two to five libuv round trips per entry on the main thread, where a tree's 1,500
 * directories and 1,000 symlinks kept the engine threads idle for about half a second.
 */
export type EntryWork =
  /** Create a directory (or accept an existing real one; never a symlink to one). */
  | { op: 'mkdir'; path: string }
  /** Create a symlink, replacing anything but a directory, and set its owner and time. */
  | { op: 'symlink'; path: string; target: string; owner: { uid: number; gid: number } | null; mtime: number }
  /** Set a finished directory's owner, times and mode. */
  | { op: 'dir-metadata'; path: string; meta: RestoredMetadata };

export type EntryOutcome = { ok: true; warnings: string[] } | { ok: false; why: string };

/** Carries out a batch in order; one entry's failure does not stop the others. */
export function restoreEntries(batch: EntryWork[]): EntryOutcome[] {
  return batch.map((w) => {
    try {
      if (w.op === 'mkdir') return makeDir(w.path);
      if (w.op === 'symlink') return makeSymlink(w);
      return setDirMetadata(w.path, w.meta);
    } catch (err) {
      return { ok: false, why: `unexpected failure (${errno(err)})` };
    }
  });
}

function makeDir(path: string): EntryOutcome {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if (errno(err) !== 'EEXIST') return { ok: false, why: `cannot create directory (${errno(err)})` };
  }
  // Whatever was there before must be a real directory: descending through a symlink could escape the target.
  if (!lstatSync(path).isDirectory())
    return { ok: false, why: 'exists and is not a directory (possibly a symlink)' };
  return { ok: true, warnings: [] };
}

function makeSymlink(w: Extract<EntryWork, { op: 'symlink' }>): EntryOutcome {
  try {
    symlinkSync(w.target, w.path);
  } catch (err) {
    if (errno(err) !== 'EEXIST') return { ok: false, why: `cannot create symlink (${errno(err)})` };
    if (lstatSync(w.path).isDirectory()) return { ok: false, why: 'exists and is a directory' };
    unlinkSync(w.path);
    symlinkSync(w.target, w.path);
  }
  const warnings: string[] = [];
  if (w.owner) {
    try {
      lchownSync(w.path, w.owner.uid, w.owner.gid);
    } catch (err) {
      warnings.push(`cannot set owner (${errno(err)})`);
    }
  }
  try {
    lutimesSync(w.path, w.mtime, w.mtime);
  } catch (err) {
    warnings.push(`cannot set mtime (${errno(err)})`);
  }
  return { ok: true, warnings };
}

function setDirMetadata(path: string, meta: RestoredMetadata): EntryOutcome {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    return { ok: false, why: `cannot open directory to set its metadata (${errno(err)})` };
  }
  const warnings: string[] = [];
  try {
    if (meta.owner) {
      try {
        fchownSync(fd, meta.owner.uid, meta.owner.gid);
      } catch (err) {
        warnings.push(`cannot set owner (${errno(err)})`);
      }
    }
    futimesSync(fd, meta.mtime, meta.mtime);
    fchmodSync(fd, meta.mode);
  } catch (err) {
    return { ok: false, why: `cannot set times or mode (${errno(err)})` };
  } finally {
    closeSync(fd);
  }
  return { ok: true, warnings };
}
