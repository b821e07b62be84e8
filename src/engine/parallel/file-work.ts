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
import type { BigIntStats, Dirent } from 'node:fs';
import { createHash } from 'node:crypto';
import { type ChunkerParams, CutPointFinder } from '../chunker/fastcdc.js';
import { RECYCLE_MIN, threadRecycler } from '../buffer-recycler.js';
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
  listSubdirsAhead(top, path, { left: aheadEntries - top.entries.length });
  return top;
}

/**
 * Lists the subdirectories `names` of `path`, in that order, each with its own subdirectories as
 * scanDirectories fills them, until about `aheadEntries` entries in all (the first is always
 * listed, however large). They come back as the `subdirs` of an otherwise empty listing. For the
 * walk of a directory without a parent tree when it reaches a subdirectory its parent's listing did
 * not bring: the siblings after it come in the same request instead of one round trip each.
 */
export function scanSubdirs(path: string, names: readonly string[], aheadEntries: number): ScannedDir {
  const subdirs = new Map<string, ScannedDir>();
  const budget = { left: aheadEntries };
  for (const name of names) {
    if (budget.left <= 0 && subdirs.size > 0) break;
    const abs = childPath(path, name);
    const dir = scanDirectory(abs);
    budget.left -= dir.entries.length + 1;
    subdirs.set(name, dir);
    listSubdirsAhead(dir, abs, budget);
  }
  return { error: null, entries: [], invalidNames: [], subdirs };
}

/** Fills `dir.subdirs` depth first, in the walk's order, while `budget.left` entries remain. */
function listSubdirsAhead(dir: ScannedDir, dirPath: string, budget: { left: number }): void {
  const subdirs = dir.entries.filter((e) => e.kind === 'dir' && e.error === undefined);
  for (const e of subdirs.sort((a, b) => compareNames(a.name, b.name))) {
    if (budget.left <= 0) return;
    const abs = childPath(dirPath, e.name);
    const sub = scanDirectory(abs);
    budget.left -= sub.entries.length + 1;
    (dir.subdirs ??= new Map()).set(e.name, sub);
    listSubdirsAhead(sub, abs, budget);
  }
}

/** What a stat-only count of part of a tree found (countTree). */
export interface TreeCount {
  /** Regular files, and their bytes. */
  files: number;
  bytes: number;
  /** Directories found and not counted yet: the caller's next requests. */
  pending: string[];
}

/**
 * Counts the regular files under `path` and their bytes, depth first, until about `aheadEntries`
 * entries are counted; the directories it did not get to are handed back. For the progress
 * scanner of a first backup (archiver/scanner.ts), which needs only the totals. Why not
 * scanDirectories: that reply carries every entry's metadata to the main thread, so each
 * directory of a first backup was listed, cloned and built into objects twice, once for the
 * totals and once for the walk (30,000 entries of the small benchmark tree; about a tenth of its
 * CPU time). Here only files are lstat'ed (readdir's types tell the rest; a file system that does
 * not give types gets an lstat per entry), nothing is read, and an entry that cannot be listed or
 * stat'ed, or whose name is not valid UTF-8, is left out of the totals: the walk reports it.
 */
export function countTree(path: string, aheadEntries: number): TreeCount {
  let files = 0;
  let bytes = 0;
  const stack = [path];
  let left = aheadEntries;
  while (stack.length > 0 && left > 0) {
    const dir = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    left -= entries.length + 1;
    for (const e of entries) {
      if (e.isDirectory()) stack.push(childPath(dir, e.name));
      else if (e.isFile() || untyped(e)) {
        // lstat gives a file's size, and says what an untyped entry is.
        const abs = childPath(dir, e.name);
        try {
          const st = lstatSync(abs);
          if (st.isFile()) {
            files++;
            bytes += st.size;
          } else if (st.isDirectory()) stack.push(abs);
        } catch {
          // Gone or unreadable since the listing: the walk reports it, if it is still so.
        }
      }
    }
  }
  return { files, bytes, pending: stack };
}

/** An entry readdir gave no type for (DT_UNKNOWN): some file systems never do. */
function untyped(e: Dirent): boolean {
  return !(
    e.isFile() ||
    e.isDirectory() ||
    e.isSymbolicLink() ||
    e.isFIFO() ||
    e.isSocket() ||
    e.isBlockDevice() ||
    e.isCharacterDevice()
  );
}

/** Bytes a read request covers at most: a bound on the plaintext a part hands back at once. */
export const PART_BYTES = 4 * 1024 * 1024;
/** Size of this thread's read buffer, where a small file (up to the chunker's minimum) is read whole. */
const READ_SIZE = 1024 * 1024;
/**
 * Read size past a chunk's minimum, where a cut may come: what is read beyond the cut moves to
 * the next chunk's buffer, so a smaller read copies less, at the price of more read calls.
 */
const SCAN_READ = 128 * 1024;

/**
 * An open source file being read part by part on one thread: reads, finds chunk boundaries,
 * hashes each chunk and checks it against the known-blob filter. Chunks of a small file are
 * compressed and sealed here too (one request per file in all); chunks of a large file come back
 * as plaintext so their encoding spreads over every pool thread, not only the one reading.
 *
 * A large file is read straight into the buffer its chunk leaves with: up to the chunker's
 * minimum size in one read (no cut can come sooner), then SCAN_READ at a time; only the bytes
 * read past a cut are copied, into the next chunk's buffer. Why: reading into one reused buffer
 * and copying every chunk out of it was a copy of every byte backed up, into memory the
 * kernel had to map page by page, a fifth of a large first backup's CPU time.
 */
export class FileSession {
  private position = 0;
  /** File offset of the chunk in progress. */
  private chunkStart = 0;
  private readonly finder: CutPointFinder;
  /** The chunk in progress, from its start: `filled` bytes read into `buf`. */
  private buf: Buffer | null = null;
  private filled = 0;
  /** Whether `buf` is pooled (buffer-recycler.ts), so the chunk may leave in it, or this thread's read buffer. */
  private owned = false;
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
    let eof = false;
    while (this.position - start < limit) {
      const want = this.readLength(limit - (this.position - start));
      const buf = this.room(want);
      let n: number;
      try {
        n = readSync(this.fd, buf, this.filled, want, this.position);
      } catch (err) {
        const position = this.position;
        this.close();
        return { status: 'error', stage: 'read', errno: errno(err), position };
      }
      if (n === 0) {
        eof = true;
        break;
      }
      this.position += n;
      this.scan(n, chunks);
      if (n < want && this.position >= this.expectedSize) {
        eof = true;
        break;
      }
    }
    if (!eof && this.buf && !this.owned) {
      // The read buffer serves every session of this thread: what this one has read of its
      // chunk moves to a buffer of its own before another session reads (a file read in several
      // parts, under a read rate limit or one that grew since it was listed).
      if (this.filled > 0) this.ownBuffer(this.filled);
      else this.buf = null;
    }
    if (eof) {
      if (this.filled > 0) {
        const last = this.buf!.subarray(0, this.filled);
        this.buf = null;
        this.filled = 0;
        this.emit(last, this.owned, chunks);
      }
      this.finder.reset();
      this.close();
    }
    return { status: 'part', chunks, bytesRead: this.position - start, eof };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    // A chunk cut short by an error, or by a file that grew (readSmallFiles), is dropped.
    if (this.buf && this.owned) threadRecycler.give(this.buf.buffer as ArrayBuffer);
    this.buf = null;
    this.filled = 0;
  }

  /**
   * Bytes to read next, at most `left`: up to the chunker's minimum at once, then SCAN_READ, never
   * past its maximum (so a chunk fits its buffer), and one byte more than the rest of the size
   * lstat gave, so that a short read proves end of file in a single call (small files).
   */
  private readLength(left: number): number {
    const { minSize, maxSize } = this.params.chunker;
    const toMin = minSize - this.filled;
    const rest = this.expectedSize - this.position;
    let n = Math.min(toMin > 0 ? toMin : SCAN_READ, maxSize - this.filled, left);
    if (rest >= 0) n = Math.min(n, rest + 1);
    return Math.max(1, n);
  }

  /** The chunk's buffer, with room for `want` more bytes (grown by a copy, rarely). */
  private room(want: number): Buffer {
    const need = this.filled + want;
    if (this.buf && this.buf.length >= need) return this.buf;
    if (!this.buf && this.encodeHere && need <= READ_SIZE) {
      this.owned = false;
      return (this.buf = readBuffer());
    }
    return this.ownBuffer(need);
  }

  /** Moves the chunk in progress into a new pooled buffer with room for `need` bytes. */
  private ownBuffer(need: number): Buffer {
    const bigger = threadRecycler.take(this.capacityFor(need));
    if (this.buf) {
      this.buf.copy(bigger, 0, 0, this.filled);
      if (this.owned) threadRecycler.give(this.buf.buffer as ArrayBuffer);
    }
    this.owned = true;
    return (this.buf = bigger);
  }

  /**
   * A new chunk buffer's size for `need` bytes: twice the average chunk, which nearly every
   * chunk fits (normalized chunking keeps most near the average), doubled on the rare chunk
   * that outgrows its pooled buffer; else less when the rest of the file is smaller, but never
   * below the recycler's smallest size, so that every chunk leaves in a buffer it can hand over
   * whole and reuse.
   */
  private capacityFor(need: number): number {
    const { avgSize, maxSize } = this.params.chunker;
    const growing = this.buf !== null && this.owned;
    const grown = growing ? 2 * this.buf!.length : 2 * avgSize;
    const fileRest = this.filled + Math.max(0, this.expectedSize - this.position) + 1;
    return Math.max(need, RECYCLE_MIN, Math.min(grown, maxSize, growing ? maxSize : fileRest));
  }

  /** Hands on the chunks the `n` bytes just read into `buf` complete. */
  private scan(n: number, chunks: PartChunk[]): void {
    let from = this.filled;
    this.filled += n;
    while (this.buf && this.filled > 0) {
      const buf = this.buf;
      const at = this.finder.findCut(buf.subarray(0, this.filled), from);
      if (at < 0) return;
      const tail = this.filled - at;
      const chunk = buf.subarray(0, at);
      if (this.owned) {
        // The bytes past the cut start the next chunk's buffer; copied before the chunk goes,
        // since emit may give its buffer back for reuse.
        this.buf = null;
        this.filled = 0;
        if (tail > 0) {
          this.room(tail).set(buf.subarray(at, at + tail));
          this.filled = tail;
        }
        this.emit(chunk, true, chunks);
      } else {
        // The read buffer: the chunk is encoded (or copied) at once, then the rest moves up.
        this.emit(chunk, false, chunks);
        buf.copyWithin(0, at, at + tail);
        this.filled = tail;
      }
      from = 0;
    }
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
      // A whole small file in a compressed format is stored as it is (see startsCompressed).
      const level = startsCompressed(plaintext) ? 0 : this.params.compressionLevel;
      const blob = encodeBlob(this.params.key, 'data', plaintext, id, level);
      chunks.push({ ...base, kind: 'sealed', sealed: blob.sealed, compressed: blob.compressed });
    } else {
      chunks.push({ ...base, kind: 'plain', data: owned ? plaintext : exactCopy(plaintext) });
      return;
    }
    // Not handed on: an owned plaintext's buffer serves the next chunk.
    if (owned) threadRecycler.give(plaintext.buffer as ArrayBuffer);
  }
}

/**
 * Leading bytes of formats whose contents are compressed throughout: gzip (deflate), zstd, xz,
 * bzip2, 7-Zip, PNG and JPEG. Not zip, whose members may be stored uncompressed (a jar made
 * with `jar -0`, say).
 */
const COMPRESSED_MAGICS = [
  [0x1f, 0x8b, 0x08],
  [0x28, 0xb5, 0x2f, 0xfd],
  [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
  [0x42, 0x5a, 0x68],
  [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c],
  [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  [0xff, 0xd8, 0xff],
].map((m) => Buffer.from(m));

/**
 * Whether a file's first bytes say it is in a compressed format, so that zstd would not shrink it
 * by the 3 % a blob must save to be kept compressed (blob-codec.ts). Why: zstd gives up on such
 * data only after reading all of it; the small benchmark tree's 21,530 gzipped man pages (38 MB)
 * were each compressed in vain, about 0.1 s of the engine threads' time.
 */
export function startsCompressed(data: Uint8Array): boolean {
  return COMPRESSED_MAGICS.some((m) => data.length > m.length && m.every((byte, i) => data[i] === byte));
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

/** This thread's read buffer, reused by every small file (sessions copy out whatever they keep). */
function readBuffer(): Buffer {
  return (shared ??= Buffer.allocUnsafeSlow(READ_SIZE));
}
