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
  lstatSync,
  openSync,
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
      plain = decodeBlob(key, w.blob.sealed, w.blob.ref, w.blob.packId);
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
