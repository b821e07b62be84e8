/**
 * The per-entry file-system work of a backup, done with synchronous calls on a pool thread
 * (encode-worker.ts), or inline when the pool has no threads.
 *
 * Why synchronous, and why here: through `fs/promises` every `lstat`, `open`, `read` and `close`
 * is a round trip to libuv's thread pool, and on a tree of 30,000 small files those hand-offs
 * (about 28 futex calls per file, measured with `strace -c`) cost more than the reads themselves.
 * A pool thread instead lists and stats a whole directory in one request, and reads, chunks,
 * hashes, compresses and seals a whole small file in another (a large file takes one request per
 * few MiB), so the main thread pays one message per directory and per small file, and every
 * core does file-system work.
 */
import {
  closeSync,
  constants as fsc,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { createHash } from 'node:crypto';
import { type ChunkerParams, CutPointFinder } from '../chunker/fastcdc.js';
import { capacity, threadRecycler } from '../buffer-recycler.js';
import { encodeBlob } from '../pack/blob-codec.js';
import { compareNames, type TreeNode } from '../tree/tree.js';
import { filterHas } from './known-filter.js';

export type ScannedKind = 'dir' | 'file' | 'symlink' | 'other';

/**
 * One entry of a listed directory, with what the archiver needs from its lstat: the tree node's
 * metadata as the snapshot stores it (mode is the permission bits; size is 0 but for files).
 */
export interface ScannedEntry extends Pick<
  TreeNode,
  'name' | 'mode' | 'mtimeNs' | 'ctimeNs' | 'size' | 'uid' | 'gid' | 'inode' | 'linkTarget'
> {
  kind: ScannedKind;
  /** errno of a failed lstat (the entry has no metadata) or readlink (no linkTarget). */
  error?: { stage: 'stat' | 'readlink'; errno: string };
}

export interface ScannedDir {
  /** errno when the directory itself cannot be listed; `entries` is then empty. */
  error: string | null;
  entries: ScannedEntry[];
  /** Names that are not valid UTF-8, as hex: they would be restored under another name. */
  invalidNames: string[];
  /**
   * Listings of subdirectories read ahead in the same request (scanDirectories), by name; a
   * subdirectory missing here is listed when the walk reaches it.
   */
  subdirs?: Map<string, ScannedDir>;
}

/** One content-defined chunk of a file, as a pool thread hands it back. */
export type PartChunk = { id: string; offset: number; length: number } & (
  | /** The repository has a blob with this id (per the filter): nothing to store. */
    { kind: 'known' }
    /** New: the plaintext, for the main thread to deduplicate and have encoded. */
  | { kind: 'plain'; data: Buffer }
  /** New, and small enough that the thread encoded it already. */
  | { kind: 'sealed'; sealed: Buffer; compressed: boolean }
);

export type FilePartOutcome =
  | { status: 'part'; chunks: PartChunk[]; bytesRead: number; eof: boolean }
  | { status: 'error'; stage: 'open' | 'read'; errno: string; position: number };

/** What reading a backup's files needs, the same for every file of the backup. */
export interface ReadContext {
  key: Buffer;
  gear: Int32Array;
  chunker: ChunkerParams;
  /** The repository's zstd level for new blobs (0: none). */
  compressionLevel: number;
  /** KnownBlobFilter table of the repository's blobs. */
  known: SharedArrayBuffer;
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? String(err);
}

function entryFrom(name: string, kind: ScannedKind, st: BigIntStats): ScannedEntry {
  return {
    name,
    kind,
    mode: Number(st.mode & 0o7777n),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    size: kind === 'file' ? Number(st.size) : 0,
    uid: Number(st.uid),
    gid: Number(st.gid),
    inode: st.ino.toString(),
  };
}

const NO_METADATA = { mode: 0, mtimeNs: '0', ctimeNs: '0', size: 0, uid: 0, gid: 0, inode: '0' };

/**
 * `dir`/`name` for a name readdir gave (never '.', '..' or containing '/') under a resolved
 * directory: path.join's normalising was a measurable share of walking a large tree.
 */
export function childPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** A directory's names (see listNames). */
export type ListedNames =
  { error: string; names?: undefined } | { error: null; names: string[]; invalidNames: string[] };

/**
 * The names in a directory; those that are not valid UTF-8 apart, as hex. Read as strings, which
 * costs no Buffer per name; a directory with a name decoded to U+FFFD (an invalid sequence, or a
 * real U+FFFD) is read again as bytes to tell which.
 */
export function listNames(path: string): ListedNames {
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (err) {
    return { error: errno(err) };
  }
  if (!names.some((n) => n.includes('\uFFFD'))) return { error: null, names, invalidNames: [] };
  let raw: Buffer[];
  try {
    raw = readdirSync(path, { encoding: 'buffer' });
  } catch (err) {
    return { error: errno(err) };
  }
  const valid: string[] = [];
  const invalidNames: string[] = [];
  for (const r of raw) {
    const name = r.toString('utf8');
    if (Buffer.from(name, 'utf8').equals(r)) valid.push(name);
    else invalidNames.push(r.toString('hex'));
  }
  return { error: null, names: valid, invalidNames };
}

/** lstats `name` in the directory `path` (and reads it, for a symlink). Never throws. */
export function statEntry(path: string, name: string): ScannedEntry {
  const abs = childPath(path, name);
  let st: BigIntStats;
  try {
    st = lstatSync(abs, { bigint: true });
  } catch (err) {
    return { name, kind: 'other', ...NO_METADATA, error: { stage: 'stat', errno: errno(err) } };
  }
  const kind: ScannedKind = st.isDirectory()
    ? 'dir'
    : st.isFile()
      ? 'file'
      : st.isSymbolicLink()
        ? 'symlink'
        : 'other';
  const entry = entryFrom(name, kind, st);
  if (kind === 'symlink') {
    try {
      entry.linkTarget = readlinkSync(abs);
    } catch (err) {
      entry.error = { stage: 'readlink', errno: errno(err) };
    }
  }
  return entry;
}

/** Lists a directory and lstats every entry (symlinks are read too). Never throws for an entry. */
export function scanDirectory(path: string): ScannedDir {
  const listed = listNames(path);
  if (listed.error !== null) return { error: listed.error, entries: [], invalidNames: [] };
  return {
    error: null,
    entries: listed.names.map((n) => statEntry(path, n)),
    invalidNames: listed.invalidNames,
  };
}

/**
 * Lists a directory as scanDirectory does, then its subdirectories depth first (in the order the
 * archiver walks them, see compareNames), until about `aheadEntries` entries are listed in all.
 * Why: a backup that reads few files (no-change, 1 %) is a walk whose every step was a round
 * trip to a pool thread and back, and those hand-offs, not the lstat calls, were its time. A
 * listing read ahead is at most a few ms older than one read on arrival; a backup of a live tree
 * is no snapshot either way.
 */
export function scanDirectories(path: string, aheadEntries: number): ScannedDir {
  const top = scanDirectory(path);
  let left = aheadEntries - top.entries.length;
  const fill = (dir: ScannedDir, dirPath: string): void => {
    const subdirs = dir.entries.filter((e) => e.kind === 'dir' && e.error === undefined);
    for (const e of subdirs.sort((a, b) => compareNames(a.name, b.name))) {
      if (left <= 0) return;
      const abs = childPath(dirPath, e.name);
      const sub = scanDirectory(abs);
      left -= sub.entries.length + 1;
      (dir.subdirs ??= new Map()).set(e.name, sub);
      fill(sub, abs);
    }
  };
  fill(top, path);
  return top;
}

/** Bytes a read request covers at most: a bound on the plaintext a part hands back at once. */
export const PART_BYTES = 4 * 1024 * 1024;
/** Size of one read call. */
const READ_SIZE = 1024 * 1024;

/**
 * An open source file being read part by part on one thread: reads, finds chunk boundaries,
 * hashes each chunk and checks it against the known-blob filter. Chunks of a small file are
 * compressed and sealed here too (one request per file in all); chunks of a large file come back
 * as plaintext so their encoding spreads over every pool thread, not only the one reading.
 */
export class FileSession {
  private position = 0;
  /** File offset of the chunk in progress. */
  private chunkStart = 0;
  private readonly finder: CutPointFinder;
  /**
   * The start of the chunk in progress, copied out of the read buffer (which is reused) into a
   * pooled buffer that grows as needed and leaves with the chunk (buffer-recycler.ts).
   */
  private carry: Buffer | null = null;
  private carryBytes = 0;
  private readonly encodeHere: boolean;
  private closed = false;

  private constructor(
    private readonly fd: number,
    private readonly params: ReadContext,
    /** The size lstat gave; a file up to the chunker's minimum size is one chunk, encoded in place. */
    private readonly expectedSize: number,
  ) {
    this.finder = new CutPointFinder(params.gear, params.chunker);
    this.encodeHere = expectedSize <= params.chunker.minSize;
  }

  /** Opens the file; an open error comes back as an outcome, not an exception. */
  static open(path: string, context: ReadContext, expectedSize: number): FileSession | FilePartOutcome {
    try {
      // O_NOFOLLOW: if the entry was swapped for a symlink since lstat, refuse rather than back up its target.
      return new FileSession(openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW), context, expectedSize);
    } catch (err) {
      return { status: 'error', stage: 'open', errno: errno(err), position: 0 };
    }
  }

  /** Reads up to `maxBytes` more; the session closes itself at end of file or on an error. */
  next(maxBytes: number): FilePartOutcome {
    const chunks: PartChunk[] = [];
    const start = this.position;
    const limit = Math.max(1, Math.min(maxBytes, PART_BYTES));
    // One byte more than the rest of the expected size: a short read then proves end of file
    // in a single call, which matters for small files.
    const want = () => {
      const rest = this.expectedSize - this.position;
      return Math.min(READ_SIZE, limit - (this.position - start), rest >= 0 ? rest + 1 : READ_SIZE);
    };
    let eof = false;
    while (this.position - start < limit) {
      const buf = readBuffer(want());
      let n: number;
      try {
        n = readSync(this.fd, buf, 0, buf.length, this.position);
      } catch (err) {
        const position = this.position;
        this.close();
        return { status: 'error', stage: 'read', errno: errno(err), position };
      }
      if (n === 0) {
        eof = true;
        break;
      }
      this.cut(buf.subarray(0, n), chunks);
      this.position += n;
      if (n < buf.length && this.position >= this.expectedSize) {
        eof = true;
        break;
      }
    }
    if (eof) {
      if (this.carryBytes > 0) this.emit(this.takeCarry(), true, chunks);
      this.finder.reset();
      this.close();
    }
    return { status: 'part', chunks, bytesRead: this.position - start, eof };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private cut(buf: Buffer, chunks: PartChunk[]): void {
    let pos = 0;
    while (pos < buf.length) {
      const at = this.finder.findCut(buf, pos);
      if (at < 0) {
        this.appendCarry(buf.subarray(pos));
        return;
      }
      const piece = buf.subarray(pos, at);
      if (this.carryBytes > 0) {
        this.appendCarry(piece);
        this.emit(this.takeCarry(), true, chunks);
      } else {
        this.emit(piece, false, chunks);
      }
      pos = at;
    }
  }

  private appendCarry(piece: Buffer): void {
    const need = this.carryBytes + piece.length;
    if (this.carry && this.carry.length < need && capacity(this.carry) >= need) {
      this.carry = Buffer.from(this.carry.buffer, 0, capacity(this.carry));
    }
    if (!this.carry || this.carry.length < need) {
      // Grows by doubling from the average chunk size; no chunk outgrows the chunker's maximum.
      const room = Math.max(
        need,
        Math.min(Math.max(2 * this.carryBytes, this.params.chunker.avgSize), this.params.chunker.maxSize),
      );
      const bigger = threadRecycler.take(room);
      if (this.carry) {
        this.carry.copy(bigger, 0, 0, this.carryBytes);
        threadRecycler.give(this.carry.buffer as ArrayBuffer);
      }
      this.carry = bigger;
    }
    piece.copy(this.carry, this.carryBytes);
    this.carryBytes = need;
  }

  /** The chunk in progress as a buffer of its own (never a view of the read buffer). */
  private takeCarry(): Buffer {
    const whole = this.carry!.subarray(0, this.carryBytes);
    this.carry = null;
    this.carryBytes = 0;
    return whole;
  }

  /** Unless `owned`, `plaintext` is a view of the reused read buffer: what is kept is copied. */
  private emit(plaintext: Buffer, owned: boolean, chunks: PartChunk[]): void {
    const digest = createHash('sha256').update(plaintext).digest();
    const id = digest.toString('hex');
    const base = { id, offset: this.chunkStart, length: plaintext.length };
    this.chunkStart += plaintext.length;
    if (filterHas(this.params.known, digest)) {
      chunks.push({ ...base, kind: 'known' });
    } else if (this.encodeHere) {
      const blob = encodeBlob(this.params.key, 'data', plaintext, id, this.params.compressionLevel);
      chunks.push({ ...base, kind: 'sealed', sealed: blob.sealed, compressed: blob.compressed });
    } else {
      chunks.push({ ...base, kind: 'plain', data: owned ? plaintext : exactCopy(plaintext) });
      return;
    }
    // Not handed on: an owned plaintext's buffer serves the next chunk.
    if (owned) threadRecycler.give(plaintext.buffer as ArrayBuffer);
  }
}

/** One file of a small-file batch: its path and the size lstat gave. */
export interface SmallFileRead {
  path: string;
  expectedSize: number;
}

/**
 * A small-file batch's outcome for one file: the whole file (`eof`), an open or read error, or
 * `grew` when it is still not at end of file after PART_BYTES (it grew since lstat; the caller
 * reads it again as a large file).
 */
export type SmallFileOutcome = FilePartOutcome | { status: 'grew' };

/**
 * Reads several small files whole, one after the other, on the calling thread: each is opened,
 * read, chunked, hashed and (its chunks being new) compressed and sealed, as FileSession does for
 * one. Why batches: one pool message per file was most of the main thread's cost on a tree of
 * 30,000 small files (postMessage, promise chains, garbage), and a batch takes one round trip.
 */
export function readSmallFiles(files: readonly SmallFileRead[], context: ReadContext): SmallFileOutcome[] {
  return files.map((f): SmallFileOutcome => {
    const opened = FileSession.open(f.path, context, f.expectedSize);
    if (!(opened instanceof FileSession)) return opened;
    const part = opened.next(PART_BYTES);
    if (part.status === 'error' || part.eof) return part;
    opened.close();
    // Its chunks' buffers are dropped with it: this is rare (a file that grew past 4 MiB mid-backup).
    return { status: 'grew' };
  });
}

/** A copy that can be transferred whole (never Node's shared pool): see buffer-recycler.ts. */
function exactCopy(b: Buffer): Buffer {
  const copy = threadRecycler.take(b.length);
  b.copy(copy);
  return copy;
}

let shared: Buffer | null = null;

/** This thread's read buffer, reused by every read (sessions copy out whatever they keep). */
function readBuffer(size: number): Buffer {
  if (!shared || shared.length < READ_SIZE) shared = Buffer.allocUnsafeSlow(READ_SIZE);
  return shared.subarray(0, size);
}
