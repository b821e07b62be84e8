import { constants as fsc } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { CofferError, isCofferError } from '../../errors/coffer-error.js';
import { throwIfCancelled } from '../cancellation.js';
import { mapLanes, Semaphore, Slots } from '../concurrency.js';
import { type MasterIndex, writeIndexFile } from '../index/master-index.js';
import { blobId } from '../pack/blob-codec.js';
import type { DiffEntry, DirDiff, SealedTree } from '../parallel/dir-diff.js';
import {
  childPath,
  PART_BYTES,
  type ReadContext,
  type PartChunk,
  type ScannedDir,
  type ScannedEntry,
} from '../parallel/file-work.js';
import { KnownBlobFilter } from '../parallel/known-filter.js';
import { type BlobPool, sharedBlobPool } from '../parallel/blob-pool.js';
import { BlobSaver, type SaveOutcome } from '../repository/blob-saver.js';
import { compressionLevel } from '../repository/repository-config.js';
import type { RepositoryContext } from '../repository/repository-context.js';
import { loadSnapshot, newSnapshotId, saveSnapshot, type Snapshot } from '../snapshot/snapshot.js';
import { compareNames, type TreeNode } from '../tree/tree.js';
import { type EntryResult, StreamedTree } from './streamed-tree.js';
import type { BackupOptions, BackupProgress, BackupResult, BackupStats } from './backup-types.js';
import { ReadRateLimiter } from './rate-limiter.js';
import { Scanner } from './scanner.js';
import { nodeOf } from './tree-nodes.js';

/**
 * Files of one directory in flight at once (the open directories along the walk's path multiply
 * this; the two semaphores below bound the reading). Enough to keep every pool thread fed with
 * small files.
 */
const ENTRY_CONCURRENCY = 32;
/**
 * Subdirectories of one directory backed up at once: one, so the walk goes depth first and the
 * directories open at once are bounded by the tree's depth, not its breadth. Each directory being
 * backed up holds its listing (with a parent, only its changed entries and subdirectories) and
 * its new nodes until its last entry is done; with 32 at once (and the parent's nodes held too,
 * as they were then) about 90 directories were open on the 30,000-file tree. Measured there
 * (bench/engine.ts, coffer alone): peak RSS of a no-change backup 148–164 MB with 32, 139–151
 * with 2, 127–131 with 1; after a 1 % change 181–190, 162–171 and 158–163 MB; first backups
 * about 200 MB in all three. The price: a no-change backup takes 1.07–1.19 s instead of
 * 0.95–1.03 s and a 1 % change 1.28–1.52 s instead of 1.11–1.22 s, as the few files to read are
 * no longer read in several directories at once. Files still run ENTRY_CONCURRENCY at once in
 * every open directory, which keeps the pool threads fed on first backups.
 */
const SUBDIRS_AT_ONCE = 1;
/**
 * Large files being read at once: one per engine thread, at least two (each holds at most one
 * part, PART_BYTES, plus chunks in flight). Why not more: with 4 on a 2-core machine a large
 * first backup took the same time and peaked 8-17 MB higher, with a third more page faults
 * (alternated by hand on the large benchmark tree); with 1 it took a fifth longer.
 */
const MIN_FILE_READERS = 2;
/**
 * Small files being read and encoded on pool threads at once (each at most the chunker's
 * minimum size, 512 KiB by default): many per thread, so none waits for the main thread. With
 * 12 (and 16 entries per directory) the two threads of a 2-core machine were idle for a quarter
 * of a 30,000-file first backup (CPU profile); 32 and 32 cut its wall time by about a tenth.
 */
const SMALL_FILES_IN_FLIGHT = 32;
/**
 * Small files that need reading go to pool threads in batches, one request per batch
 * (file-work.ts readSmallFiles): at most this many files and SMALL_BATCH_BYTES (by lstat) each.
 * One request per file cost the main thread a message, a promise chain and their garbage per
 * file, most of its work on a tree of 30,000 small files.
 */
const SMALL_BATCH_FILES = 32;
const SMALL_BATCH_BYTES = 1024 * 1024;
/**
 * Batches being read at once, across the walk: two per pool thread of a 2-core machine, so a
 * thread has the next batch queued while the main thread packs the last one's blobs.
 */
const SMALL_BATCHES_IN_FLIGHT = 4;
/**
 * Entries listed ahead per directory listing request (file-work.ts scanDirectories): the
 * subdirectories the walk goes into next come with their parent's listing, not one round trip
 * to a pool thread each. At most this many entries per open directory wait to be walked.
 */
const SCAN_AHEAD_ENTRIES = 4096;
/**
 * Entries the progress scanner counts per pool request (file-work.ts countTree): a few tens of
 * milliseconds of a thread, so work queued behind it on that thread waits no longer than that.
 */
const COUNT_ENTRIES_PER_REQUEST = 4096;
/** Progress events a backup sends at most this often, apart from its last (see emit). */
const PROGRESS_EVERY_MS = 50;
/**
 * Directories listed and compared with their parent trees ahead of the walk (see refillDiffs): at
 * most this many, and at most this many bytes of their parent trees once opened. A diff held
 * ahead holds its directory's changed entries and its parent tree's sealed bytes, both of a size
 * with the tree, so the bytes bound what waiting diffs hold. An unchanged directory's diff is a
 * few hundred bytes: on the benchmark trees a budget of 64 diffs kept the threads half idle, the
 * walk taking each diff as it arrived; 1,024 kept them busy.
 */
const DIFFS_AHEAD = 4096;
const DIFF_TREE_BYTES_AHEAD = 16 * 1024 * 1024;
/** Chunks of one file being encoded at once (see readFile). */
const CHUNKS_IN_FLIGHT = 4;
/**
 * Walked directories whose trees are being built and sealed at once (see saveDir). Why: the
 * walk used to wait for each directory's tree before it went into the next sibling, so the
 * trees of changed directories were built one after another at the end of each subtree, a
 * tail of a 1 % backup where one thread worked and the other sat idle. Each waiting directory
 * holds its new nodes (and, with a parent, its parent tree's sealed bytes), so they are bounded.
 */
const SEALS_AT_ONCE = 16;

/**
 * A directory whose entries are all done and whose tree is being built and sealed (see saveDir):
 * the walk goes on meanwhile.
 */
interface SealingDir {
  treeId: Promise<string>;
}

/** An entry below the root that cannot be backed up; it is left out and the reason becomes a warning. */
class SkippedEntry extends Error {}

/** A directory compared with its parent tree (dir-diff.ts), or why that tree could not be read. */
type ParentDiff =
  | {
      diff: DirDiff;
      tree: SealedTree;
      /** Its small files being read (see requestDiff). */
      reads: SmallReads;
    }
  | { unreadable: string };

/**
 * The subdirectories of a directory the walk is in, and how far their diffs have been requested
 * ahead (see refillDiffs). `walked`: how many of them the walk has gone into, in order.
 */
interface DiffCursor {
  abs: string;
  rel: string;
  entries: readonly DiffEntry[];
  next: number;
  walked: number;
}

interface FileContent {
  /** Data blob ids in file order. */
  content: string[];
  /** Bytes read, which is the file's size in the snapshot (it may have changed since lstat). */
  bytes: number;
}

/**
 * A small file read in a batch: its content, why it is left out, or null when it grew past what
 * a batch reads (it is then read on its own, as a large file is).
 */
type BatchedRead = FileContent | { skipped: string } | null;

/**
 * A directory's small files being read in batches (readSmallFilesAhead): the batches, and which
 * batch and place in it each file's read is, by name. Why not a promise per file: a directory's
 * reads are all queued when its listing arrives, and 18,000 files in one directory (the small
 * benchmark tree's man1) kept two promises and a closure each alive across many of the main
 * thread's young-generation collections, which copied them every time.
 */
class SmallReads {
  private readonly places = new Map<string, number>();
  private readonly batches: Promise<BatchedRead[]>[] = [];
  /** Each batch's reads once it is done. */
  private readonly done: (BatchedRead[] | undefined)[] = [];
  private added = 0;

  /** Files put in a batch (taken or not). */
  get size(): number {
    return this.added;
  }

  /** A batch of these files (in this order, at most SMALL_BATCH_FILES of them). */
  add(names: readonly string[], batch: Promise<BatchedRead[]>): void {
    const at = this.batches.length;
    this.batches.push(batch);
    // Registered before any caller's await of the batch, so it has run by the time they resume.
    batch.then(
      (reads) => (this.done[at] = reads),
      () => undefined,
    );
    names.forEach((name, i) => this.places.set(name, at * SMALL_BATCH_FILES + i));
    this.added += names.length;
  }

  /** Whether the file `name` is in a batch and not taken yet. */
  has(name: string): boolean {
    return this.places.has(name);
  }

  /**
   * The read of the file `name`, once its batch is done (which `has` says it is in); taken once,
   * and let go of here. Why: a directory's reads and names were held until its last entry was
   * done, which for the largest directory of a tree comes at the end of the walk (the small
   * benchmark tree's man1, 18,092 files, is walked last).
   */
  take(name: string): BatchedRead | Promise<BatchedRead> {
    const place = this.places.get(name)!;
    this.places.delete(name);
    const batch = Math.floor(place / SMALL_BATCH_FILES);
    const slot = place % SMALL_BATCH_FILES;
    const taken = (reads: BatchedRead[]): BatchedRead => {
      const read = reads[slot]!;
      reads[slot] = null;
      return read;
    };
    const done = this.done[batch];
    return done ? taken(done) : this.batches[batch]!.then(taken);
  }

  /** Settles when every batch has, failed or not. */
  settled(): Promise<unknown> {
    return Promise.allSettled(this.batches);
  }
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? String(err);
}

/** Test seams: parts a test may replace to reach paths real data almost never takes. */
export interface ArchiverSeams {
  /** Instead of the filter built from the index (e.g. one that wrongly claims chunks as known). */
  knownBlobs?: KnownBlobFilter;
  /** Told when a directory's listing is in hand (`open`) and when its last entry is done. */
  onDirectory?: (rel: string, phase: 'open' | 'done') => void;
}

export async function runBackup(
  ctx: RepositoryContext,
  opts: BackupOptions,
  seams: ArchiverSeams = {},
): Promise<BackupResult> {
  return new Archiver(ctx, opts, seams).run();
}

class Archiver {
  private readonly root: string;
  private readonly signal: AbortSignal | undefined;
  private readonly limiter: ReadRateLimiter | null;
  private readonly scanner: Scanner;
  private readonly smallFiles = new Semaphore(SMALL_FILES_IN_FLIGHT);
  private readonly smallBatches = new Semaphore(SMALL_BATCHES_IN_FLIGHT);
  private readonly sealSlots = new Slots(SEALS_AT_ONCE);
  /** The first seal that failed: the walk stops at its next entry (see saveEntries). */
  private sealFailure: { err: unknown } | null = null;
  private readonly pool: BlobPool = sharedBlobPool();
  private readonly readers = new Semaphore(Math.max(MIN_FILE_READERS, this.pool.threadCount));
  private readContext: ReadContext | null = null;
  /** Diffs requested ahead of the walk, by the directory's absolute path (see prefetchDiffs). */
  private readonly diffsAhead = new Map<string, { diff: Promise<ParentDiff>; treeBytes: number }>();
  /** The parent trees' bytes (uncompressed) of the diffs in diffsAhead. */
  private diffTreeBytesAhead = 0;
  /**
   * Work the walk started and does not await where it started (small-file reads begun as diffs
   * arrive, trees being sealed), until each settles: a failed backup waits for all of it before
   * its cleanup, so nothing is left packing behind it.
   */
  private readonly workAhead = new Set<Promise<unknown>>();
  /** One per directory open in the walk, the innermost last (see refillDiffs). */
  private readonly diffCursors: DiffCursor[] = [];
  /**
   * Small-file reads started for directories listed ahead of the walk, by the directory's
   * absolute path, each taken (and deleted) when the walk gets there (see readSubdirsAhead).
   */
  private readonly readsAhead = new Map<string, SmallReads>();
  private saver: BlobSaver | null = null;
  private index: MasterIndex | null = null;
  private phase: BackupProgress['phase'] = 'scanning';
  private filesDone = 0;
  /** When the last progress event went out (see emit). */
  private lastEmit = -Infinity;
  private bytesDone = 0;
  private readonly stats: BackupStats = {
    filesNew: 0,
    filesChanged: 0,
    filesUnmodified: 0,
    dirs: 0,
    bytesScanned: 0,
    bytesRead: 0,
    bytesNew: 0,
    bytesStored: 0,
    blobsNew: 0,
    durationMs: 0,
    warnings: [],
  };

  constructor(
    private readonly ctx: RepositoryContext,
    private readonly opts: BackupOptions,
    private readonly seams: ArchiverSeams,
  ) {
    this.root = resolve(opts.sourcePath);
    this.signal = opts.signal;
    const limit = opts.limitReadBytesPerSec;
    if (limit !== undefined && (!Number.isFinite(limit) || limit <= 0)) {
      throw new CofferError(
        'InvalidRequest',
        'the read rate limit must be a positive number of bytes per second',
        {
          limitReadBytesPerSec: limit,
        },
      );
    }
    this.limiter = limit ? new ReadRateLimiter(limit) : null;
    this.scanner = new Scanner(this.root, (dir) => this.pool.countTree(dir, COUNT_ENTRIES_PER_REQUEST));
  }

  async run(): Promise<BackupResult> {
    const started = performance.now();
    throwIfCancelled(this.signal, 'the backup');
    await this.checkRoot();
    // Without a parent, the root's listing (and what it reads ahead) is read while the index loads.
    const rootListing = this.opts.parentSnapshotId
      ? undefined
      : this.pool.scanDir(this.root, SCAN_AHEAD_ENTRIES);
    rootListing?.catch(() => undefined);
    const [index, parent] = await Promise.all([this.ctx.loadIndex(), this.loadParent()]);
    this.index = index;
    const saver = new BlobSaver(this.ctx, index, this.pool);
    this.saver = saver;
    const summary = parent?.summary;
    if (summary) {
      const files = summary.filesNew + summary.filesChanged + summary.filesUnmodified;
      this.scanner.useEstimate(files, summary.bytesScanned);
    }
    const scan = summary ? Promise.resolve() : this.scanner.run().catch(() => undefined);
    this.phase = 'saving';
    try {
      const root = await this.saveDir(this.root, '', parent?.rootTreeId ?? null, rootListing);
      const rootTreeId = await root.treeId;
      this.phase = 'finalizing';
      this.emit('', true);
      await saver.flush();
      throwIfCancelled(this.signal, 'the backup');
      // The index goes first: a snapshot must never name blobs that no index lists.
      if (saver.stored.length > 0) await writeIndexFile(this.ctx.backend, this.ctx.key, saver.stored);
      throwIfCancelled(this.signal, 'the backup');
      this.stats.durationMs = Math.round(performance.now() - started);
      const snapshotId = newSnapshotId();
      await saveSnapshot(this.ctx.backend, this.ctx.key, 'pending', snapshotId, {
        version: 1,
        time: new Date().toISOString(),
        hostname: hostname(),
        sourcePath: this.root,
        rootTreeId,
        parentSnapshotId: parent?.id ?? null,
        tags: { ...(this.opts.tags ?? {}) },
        summary: this.stats,
      });
      return { snapshotId, parentSnapshotId: parent?.id ?? null, stats: this.stats };
    } catch (err) {
      // No read started ahead, nor tree being sealed, is left packing behind the cleanup.
      await Promise.allSettled([...this.workAhead]);
      // Packs already stored are indexed anyway, so a retried or resumed backup does not upload them again.
      await saver.drain().catch(() => undefined);
      if (saver.stored.length > 0) {
        await writeIndexFile(this.ctx.backend, this.ctx.key, saver.stored.splice(0)).catch(() => undefined);
      }
      throw err;
    } finally {
      this.scanner.stop();
      await scan;
      if (this.readContext) await this.pool.releaseContext(this.readContext);
    }
  }

  /**
   * A parent missing from storage (pruned, or the catalog points at another vault) costs only
   * speed, never correctness, so the backup goes on reading every file and says so.
   */
  private async loadParent(): Promise<Snapshot | null> {
    const id = this.opts.parentSnapshotId;
    if (!id) return null;
    try {
      return await loadSnapshot(this.ctx.backend, this.ctx.key, id);
    } catch (err) {
      if (!isCofferError(err, 'PointNotFound')) throw err;
      this.warn('/', `parent snapshot ${id} not found in the vault; every file was read`);
      return null;
    }
  }

  private async checkRoot(): Promise<void> {
    try {
      const st = await stat(this.root);
      if (!st.isDirectory()) {
        throw new CofferError('SourceUnreadable', `the source ${this.root} is not a directory`, {
          path: this.root,
        });
      }
      await readdir(this.root);
    } catch (err) {
      if (isCofferError(err)) throw err;
      throw new CofferError(
        'SourceUnreadable',
        `the source ${this.root} cannot be read (${errno(err)})`,
        { path: this.root, errno: errno(err) },
        { cause: err },
      );
    }
  }

  /**
   * Reports progress, at most every PROGRESS_EVERY_MS unless `force`d (the last event, with the
   * final counts, always is). Why: an event per file and per chunk, and the progress objects
   * each one made here and in the job runner, were a measurable share of the main thread's
   * garbage on a tree of small files, for a display that refreshes a few times a second.
   */
  private emit(currentPath: string, force = false): void {
    const cb = this.opts.onProgress;
    if (!cb) return;
    const now = performance.now();
    if (!force && now - this.lastEmit < PROGRESS_EVERY_MS) return;
    this.lastEmit = now;
    cb({
      phase: this.phase,
      filesDone: this.filesDone,
      filesTotal: Math.max(this.scanner.filesTotal, this.filesDone),
      bytesDone: this.bytesDone,
      bytesTotal: Math.max(this.scanner.bytesTotal, this.bytesDone),
      scanDone: this.scanner.done,
      bytesNew: this.stats.bytesNew,
      bytesStored: this.stats.bytesStored,
      currentPath,
    });
  }

  private warn(rel: string, reason: string): void {
    this.stats.warnings.push(`${rel}: ${reason}`);
  }

  /**
   * Walks a directory (children first) and resolves once every entry in it is done, with the
   * promise of its tree blob's id: the tree is built and sealed after that (sealDir) while the
   * walk goes on to the next directory. With a parent tree, a pool thread lists the directory and
   * compares it with that tree (dir-diff.ts): unchanged files never reach this thread, and a
   * directory whose every entry and subtree is unchanged is the parent's tree again, never decoded
   * here. `listed` is its listing when it came with its parent's (read ahead; only without a
   * parent tree).
   */
  private async saveDir(
    abs: string,
    rel: string,
    parentTreeId: string | null,
    listed?: ScannedDir | Promise<ScannedDir>,
  ): Promise<SealingDir> {
    let compared = parentTreeId === null ? null : await this.takeDiff(abs, rel, parentTreeId);
    if (compared && 'unreadable' in compared) {
      this.warn(rel || '/', `parent tree unreadable, files re-read (${compared.unreadable})`);
      compared = null;
    }
    if (compared?.diff.parentError) {
      this.warn(rel || '/', `parent tree unreadable, files re-read (${compared.diff.parentError})`);
    }
    const listing: DirDiff | ScannedDir =
      compared?.diff ?? (await (listed ?? this.pool.scanDir(abs, SCAN_AHEAD_ENTRIES)));
    if (listing.error !== null) {
      if (rel === '') {
        throw new CofferError('SourceUnreadable', `the source ${abs} cannot be read (${listing.error})`, {
          path: abs,
        });
      }
      throw new SkippedEntry(`directory unreadable (${listing.error})`);
    }
    // A parent tree that a thread could not open counts as no parent: everything is read again.
    const against = compared && compared.diff.parentError === null ? compared : null;
    this.stats.dirs++;
    this.seams.onDirectory?.(rel, 'open');
    // Such a name would come back different on restore; skipping it loudly beats restoring the wrong file.
    for (const hex of listing.invalidNames) this.warn(`${rel}/${hex}`, 'name is not valid UTF-8, skipped');
    if (against) this.countUnmodified(rel, against.diff);
    const entries: DiffEntry[] = listing.entries.sort((a, b) => compareNames(a.name, b.name));
    const cursor: DiffCursor | undefined = against ? { abs, rel, entries, next: 0, walked: 0 } : undefined;
    let reads = against?.reads;
    if (!compared) {
      // A listing without a parent tree: its files' reads may have started with an ancestor's
      // listing; if not, they start now, and so do those of the subdirectories listed with it.
      reads = this.readsAhead.get(abs);
      this.readsAhead.delete(abs);
      if (!reads) {
        reads = this.readSmallFilesAhead(abs, rel, entries);
        this.readSubdirsAhead(abs, rel, listing as ScannedDir);
      }
    }
    let results: (EntryResult | null)[];
    if (cursor) this.diffCursors.push(cursor);
    // Without a parent tree, the new tree is written as the entries finish (streamed-tree.ts).
    const streamed = against ? null : new StreamedTree(entries.length);
    try {
      this.refillDiffs();
      results = await this.saveEntries(abs, rel, entries, listing, cursor, reads, streamed);
    } finally {
      if (cursor) this.diffCursors.splice(this.diffCursors.lastIndexOf(cursor), 1);
    }
    this.seams.onDirectory?.(rel, 'done');
    await this.sealSlots.acquire();
    const sealing = streamed ? this.sealStreamed(streamed) : this.sealDir(entries, results, against!);
    const treeId = sealing.finally(() => this.sealSlots.release());
    this.untilSettled(
      treeId.catch((err: unknown) => {
        // Seen by the walk at its next entry, not only when this directory's parent seals.
        this.sealFailure ??= { err };
      }),
    );
    return { treeId };
  }

  /**
   * The tree of a walked directory, once its subdirectories' trees are sealed: the parent's tree
   * again when nothing in it changed, else a new tree blob, stored.
   */
  private async sealDir(
    entries: readonly DiffEntry[],
    walked: readonly (EntryResult | null)[],
    against: Extract<ParentDiff, { diff: DirDiff }>,
  ): Promise<string> {
    const results = await Promise.all(walked.map((r) => (r !== null && 'sealing' in r ? r.sealing : r)));
    const nodes = results.filter((n): n is TreeNode => n !== null);
    // The parent tree is never opened on this thread: a diff leaves out only files and symlinks
    // identical to the parent's, so with nothing removed, no file or symlink listed and every
    // subdirectory the same with the same subtree, the directory is unchanged.
    const unchanged =
      against.diff.removed.length === 0 &&
      results.every((n, i) => {
        const e = entries[i]!;
        return n !== null && e.kind === 'dir' && e.sameMeta === true && n.subtree === e.parentSubtree;
      });
    if (unchanged && this.saver!.knows(against.tree.id)) return against.tree.id;
    // Otherwise a thread builds and seals the new tree: these nodes, and the parent's of the
    // other names.
    const skipped = entries.filter((_, i) => results[i] === null).map((e) => e.name);
    const blob = await this.pool.buildTree(
      against.tree,
      nodes,
      [...against.diff.removed, ...skipped],
      this.fileContext(),
    );
    this.countSaved(blob.uncompressedLength, await this.saver!.saveEncoded(blob));
    return blob.id;
  }

  /** The tree of a directory walked without a parent tree, stored once written (streamed-tree.ts). */
  private async sealStreamed(streamed: StreamedTree): Promise<string> {
    const bytes = await streamed.bytes();
    const id = blobId(bytes);
    // Given: the writer's buffer is not used again, so a large one moves to the thread that seals it.
    await this.saveBlob('tree', bytes, id, true, true);
    return id;
  }

  /**
   * The entries of a directory handled concurrently, so small-file I/O overlaps; results keep the
   * entries' order, so the tree (and its id) does not depend on timing. Files and subdirectories
   * run in lanes of their own, so a subdirectory waiting for its turn never holds up a file. Files
   * read in a batch are taken in order as their batches finish, without a promise each unless
   * one must be read on its own (alone).
   */
  private async saveEntries(
    abs: string,
    rel: string,
    entries: (DiffEntry | undefined)[],
    listing: DirDiff | ScannedDir,
    cursor?: DiffCursor,
    reads?: SmallReads,
    streamed?: StreamedTree | null,
  ): Promise<(EntryResult | null)[]> {
    const subdirs = 'subdirs' in listing ? listing.subdirs : undefined;
    // The small files to read are queued in batches at once; each file's entry below waits for
    // its batch, while the walk goes on into the subdirectories.
    const batched = reads ?? this.readSmallFilesAhead(abs, rel, entries);
    const results = new Array<EntryResult | null>(entries.length).fill(null);
    // An entry's outcome goes to the streamed tree when there is one, else into results.
    const done = (i: number, outcome: EntryResult | null): void => {
      if (!streamed) {
        results[i] = outcome;
        return;
      }
      streamed.settle(i, outcome);
      // Nothing reads a streamed directory's entry once it is done, so its listing is let go of
      // entry by entry (see SmallReads.take): 18,092 entries were 5.5 MB of the main thread's
      // heap at the end of the small benchmark tree's walk.
      entries[i] = undefined;
    };
    const inBatches: number[] = [];
    const others: number[] = [];
    entries.forEach((e, i) => (e!.kind === 'file' && batched.has(e!.name) ? inBatches : others).push(i));
    // Without a parent tree, the subdirectories this listing did not bring (its SCAN_AHEAD_ENTRIES
    // ran out) are listed together when the walk reaches the first of them, and their small files'
    // reads start at once, as for a listing read ahead (readSubdirsAhead); each is let go of as
    // the walk takes it. Why: each was listed only when the walk got to it, and its files read only
    // then, one round trip to a pool thread after another while both threads sat idle
    // (/usr/share/doc: 1,042 directories of a few files each).
    const listedLater = new Map<string, ScannedDir>();
    // The subdirectories in walk order and each one's place, made when first needed: most
    // directories of a first backup never need them.
    let dirOrder: { dirs: number[]; place: Map<number, number> } | null = null;
    const listFrom = async (i: number): Promise<ScannedDir> => {
      const own = entries[i]!.name;
      if (!dirOrder) {
        // Those walked already are let go of (undefined): only this one and those after it count.
        const dirs = others.filter((k) => entries[k]?.kind === 'dir');
        dirOrder = { dirs, place: new Map(dirs.map((k, place) => [k, place])) };
      }
      const { dirs, place } = dirOrder;
      const names: string[] = [];
      for (let k = place.get(i)!; k < dirs.length && names.length < SCAN_AHEAD_ENTRIES; k++) {
        // Subdirectories after this one are not walked yet, so their entries are still here.
        const name = entries[dirs[k]!]!.name;
        if (!subdirs?.has(name)) names.push(name);
      }
      const listings = await this.pool.scanSubdirs(abs, names, SCAN_AHEAD_ENTRIES);
      this.readSubdirsAhead(abs, rel, listings);
      for (const [name, dir] of listings.subdirs!) if (name !== own) listedLater.set(name, dir);
      return listings.subdirs!.get(own)!;
    };
    // Either side failing stops the other at its next entry, so neither runs on after we return.
    const failure: { failed: boolean; err?: unknown } = { failed: false };
    const checkGoing = (): void => {
      throwIfCancelled(this.signal, 'the backup');
      if (this.sealFailure) throw this.sealFailure.err;
      if (failure.failed) throw failure.err;
    };
    const noting = (work: Promise<unknown>): Promise<void> =>
      work.then(
        () => undefined,
        (err: unknown) => {
          if (failure.failed) return;
          failure.failed = true;
          failure.err = err;
        },
      );
    const batchedFiles = async (): Promise<void> => {
      for (const i of inBatches) {
        checkGoing();
        const entry = entries[i]!;
        this.stats.bytesScanned += entry.size;
        const pending = batched.take(entry.name);
        const read = pending instanceof Promise ? await pending : pending;
        const childRel = relChild(rel, entry.name);
        if (read && 'skipped' in read) {
          this.warn(childRel, read.skipped);
          done(i, null);
        } else done(i, read ? this.fileSaved(childRel, entry, read) : await this.alone(abs, childRel, entry));
      }
    };
    try {
      await Promise.all([
        noting(batchedFiles()),
        noting(
          mapLanes(
            others,
            (i) => (entries[i]!.kind === 'dir' ? 1 : 0),
            [ENTRY_CONCURRENCY, SUBDIRS_AT_ONCE],
            async (i) => {
              checkGoing();
              const entry = entries[i]!;
              // Subdirectories are walked one at a time in order: none before this one is asked for again.
              if (entry.kind === 'dir' && cursor) cursor.next = Math.max(cursor.next, ++cursor.walked);
              const childRel = relChild(rel, entry.name);
              // A subdirectory's listing read ahead is handed on, and let go of here.
              const listed =
                subdirs?.get(entry.name) ??
                listedLater.get(entry.name) ??
                (entry.kind === 'dir' && !cursor ? listFrom(i) : undefined);
              // Awaited by saveDir; an entry that fails before (its lstat did) leaves it unread.
              if (listed instanceof Promise) listed.catch(() => undefined);
              subdirs?.delete(entry.name);
              listedLater.delete(entry.name);
              let outcome: EntryResult | null = null;
              try {
                outcome = await this.saveEntry(childPath(abs, entry.name), childRel, entry, listed);
              } catch (err) {
                if (!(err instanceof SkippedEntry)) throw err;
                this.warn(childRel, err.message);
              }
              done(i, outcome);
            },
          ),
        ),
      ]);
      if (failure.failed) throw failure.err;
      return results;
    } finally {
      // After a failure, no batch is left reading or packing behind the caller's cleanup.
      if (batched.size > 0) await batched.settled();
    }
  }

  /** A batched file that grew past what its batch read: read on its own, as a large file is. */
  private async alone(abs: string, rel: string, entry: DiffEntry): Promise<TreeNode | null> {
    try {
      return await this.readAlone(childPath(abs, entry.name), rel, entry);
    } catch (err) {
      if (!(err instanceof SkippedEntry)) throw err;
      this.warn(rel, err.message);
      return null;
    }
  }

  /** Files a diff found identical to the parent's: counted, never looked at one by one. */
  private countUnmodified(rel: string, diff: DirDiff): void {
    if (diff.sameFiles === 0) return;
    this.stats.filesUnmodified += diff.sameFiles;
    this.stats.bytesScanned += diff.sameBytes;
    this.filesDone += diff.sameFiles;
    this.bytesDone += diff.sameBytes;
    this.emit(rel);
  }

  /** Keeps `work` (which never rejects) in workAhead until it settles. */
  private untilSettled(work: Promise<unknown>): void {
    this.workAhead.add(work);
    void work.then(() => this.workAhead.delete(work));
  }

  /** The diff of a directory with its parent tree: the one requested ahead, or a new request. */
  private takeDiff(abs: string, rel: string, treeId: string): Promise<ParentDiff> {
    const ahead = this.diffsAhead.get(abs);
    if (ahead) {
      this.diffsAhead.delete(abs);
      this.diffTreeBytesAhead -= ahead.treeBytes;
      this.refillDiffs();
      return ahead.diff;
    }
    return this.requestDiff(abs, rel, treeId, true);
  }

  /**
   * A directory's diff. As it arrives, its small files that changed start being read (their
   * blobs go to the packs; what waits for the walk is their ids), and its subdirectories' diffs
   * are requested ahead (prefetchDiff). Why the reads: the walk goes into one subdirectory at a
   * time, and when each changed directory's reads began only as the walk got there, a backup of
   * 1 % changed files spent most of its time on one such round trip after another.
   * `urgent`: the walk waits for it.
   */
  private async requestDiff(abs: string, rel: string, treeId: string, urgent = false): Promise<ParentDiff> {
    let tree: SealedTree;
    try {
      tree = await this.ctx.sealedTree(this.index!, treeId);
    } catch (err) {
      // Costs only speed: the directory is listed and its files read as if new.
      return { unreadable: (err as Error).message };
    }
    const diff = await this.pool.diffDir(abs, tree, this.fileContext(), urgent);
    let reads = new SmallReads();
    if (diff.error === null && diff.parentError === null) {
      reads = this.readSmallFilesAhead(abs, rel, diff.entries);
      if (reads.size > 0) this.untilSettled(reads.settled());
      for (const e of diff.entries) if (!this.prefetchDiff(abs, rel, e)) break;
    }
    return { diff, tree, reads };
  }

  /**
   * Keeps DIFFS_AHEAD diffs requested ahead of the walk: while the walk is in one directory, the
   * pool threads list and compare the next ones, instead of one round trip to a thread per
   * directory, each waited for. The walk's next directories come first: the subdirectories of the
   * innermost open directory, then those of the one around it. Called as a directory opens and
   * whenever the walk takes a diff.
   */
  private refillDiffs(): void {
    for (let i = this.diffCursors.length - 1; i >= 0; i--) {
      const c = this.diffCursors[i]!;
      while (c.next < c.entries.length) {
        if (!this.prefetchDiff(c.abs, c.rel, c.entries[c.next]!)) return;
        c.next++;
      }
    }
  }

  /** Requests the diff of `entry` (in `abs`) ahead, if it is a directory; false when there is no room. */
  private prefetchDiff(abs: string, rel: string, entry: DiffEntry): boolean {
    if (this.diffsAhead.size >= DIFFS_AHEAD || this.diffTreeBytesAhead >= DIFF_TREE_BYTES_AHEAD) return false;
    if (entry.kind !== 'dir' || entry.error !== undefined || !entry.parentSubtree) return true;
    const path = childPath(abs, entry.name);
    if (this.diffsAhead.has(path)) return true;
    const diff = this.requestDiff(path, relChild(rel, entry.name), entry.parentSubtree);
    // Awaited when the walk gets there; a diff never taken (the walk stopped) fails quietly.
    diff.catch(() => undefined);
    const treeBytes = this.index!.get(entry.parentSubtree)?.uncompressedLength ?? 0;
    this.diffsAhead.set(path, { diff, treeBytes });
    this.diffTreeBytesAhead += treeBytes;
    return true;
  }

  /**
   * Starts reading the small files of every subdirectory listed ahead with `dir` (scanDirectories),
   * depth first in the walk's order, so each directory's reads are queued after those of the
   * directories the walk reaches before it. Why: the walk goes into one subdirectory at a time and
   * finishes each before the next, so when a directory's reads began only as the walk got there, a
   * tree of many small directories (30,000 files in 1,072 directories; /usr/share/doc's 4,982 files
   * in 1,042) had one batch of reads in flight at a time, and the engine threads sat idle between
   * one directory and the next. What waits for the walk is the files' blob ids; the blobs go to the
   * packs as each batch arrives. At most the entries of one listing ahead (SCAN_AHEAD_ENTRIES) are
   * started this way at once.
   */
  private readSubdirsAhead(abs: string, rel: string, dir: ScannedDir): void {
    for (const [name, sub] of dir.subdirs ?? []) {
      const subAbs = childPath(abs, name);
      const subRel = relChild(rel, name);
      const entries = sub.entries.sort((a, b) => compareNames(a.name, b.name));
      const reads = sub.error === null ? this.readSmallFilesAhead(subAbs, subRel, entries) : new SmallReads();
      // Kept even when empty: it marks the directory as started, so its own subdirectories are not again.
      this.readsAhead.set(subAbs, reads);
      if (reads.size > 0) this.untilSettled(reads.settled());
      this.readSubdirsAhead(subAbs, subRel, sub);
    }
  }

  /**
   * Queues the directory's small files that need reading (new, or changed since the parent) in
   * batches. Files are taken in name order, so batches hold neighbours. Not with a read rate
   * limit, which paces reads part by part (readFile).
   */
  private readSmallFilesAhead(
    abs: string,
    rel: string,
    entries: readonly (ScannedEntry | undefined)[],
  ): SmallReads {
    const pending = new SmallReads();
    if (this.limiter) return pending;
    const minSize = this.ctx.config.chunker.minSize;
    const batches: ScannedEntry[][] = [];
    let batch: ScannedEntry[] = [];
    let bytes = 0;
    for (const e of entries) {
      // undefined: an entry already done and let go of (saveEntries); none is when this runs.
      if (e === undefined || e.kind !== 'file' || e.error !== undefined || e.size > minSize) continue;
      if (batch.length === SMALL_BATCH_FILES || (batch.length > 0 && bytes + e.size > SMALL_BATCH_BYTES)) {
        batches.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(e);
      bytes += e.size;
    }
    if (batch.length > 0) batches.push(batch);
    for (const b of batches) {
      const reading = this.smallBatches.use(() => this.readBatch(abs, rel, b));
      // Awaited by the entries' saves; a failure is reported there (or the walk stopped already).
      reading.catch(() => undefined);
      pending.add(
        b.map((e) => e.name),
        reading,
      );
    }
    return pending;
  }

  /**
   * Reads a batch of small files on a pool thread and packs their chunks; one result per file.
   * A file that came back as one sealed blob the saver takes at once (saveEncodedNow: the common
   * case) is done without a promise of its own; the others take the asynchronous path.
   */
  private async readBatch(abs: string, rel: string, batch: readonly ScannedEntry[]): Promise<BatchedRead[]> {
    throwIfCancelled(this.signal, 'the backup');
    const files = batch.map((e) => ({ path: childPath(abs, e.name), expectedSize: e.size }));
    const outcomes = await this.pool.readSmallFiles(files, this.fileContext());
    const results: BatchedRead[] = new Array<BatchedRead>(outcomes.length).fill(null);
    const saves: Promise<void>[] = [];
    outcomes.forEach((o, i) => {
      if (o.status === 'grew') return;
      if (o.status === 'error') {
        this.stats.bytesRead += o.position;
        results[i] = { skipped: readErrorReason(o) };
        return;
      }
      this.stats.bytesRead += o.bytesRead;
      const childRel = relChild(rel, batch[i]!.name);
      const only = o.chunks.length === 1 ? o.chunks[0]! : null;
      if (only?.kind === 'sealed') {
        const { id, sealed, compressed, length } = only;
        const done = this.saver!.saveEncodedNow({
          id,
          type: 'data',
          sealed,
          compressed,
          uncompressedLength: length,
        });
        if (done) {
          this.countSaved(length, done);
          this.bytesDone += length;
          this.emit(childRel);
          results[i] = { content: [id], bytes: o.bytesRead };
          return;
        }
      }
      const compression = { tryCompress: true, decided: false };
      saves.push(
        (async () => {
          try {
            for (const chunk of o.chunks) await this.saveChunk(files[i]!.path, childRel, chunk, compression);
          } catch (err) {
            if (err instanceof SkippedEntry) {
              results[i] = { skipped: err.message };
              return;
            }
            throw err;
          }
          results[i] = { content: o.chunks.map((c) => c.id), bytes: o.bytesRead };
        })(),
      );
    });
    // Every save settles before the batch's slot is given back, failed or not.
    for (const s of await Promise.allSettled(saves)) if (s.status === 'rejected') throw s.reason;
    return results;
  }

  private async saveEntry(
    abs: string,
    rel: string,
    entry: DiffEntry,
    listed: ScannedDir | Promise<ScannedDir> | undefined,
  ): Promise<EntryResult> {
    if (entry.error?.stage === 'stat') throw new SkippedEntry(`cannot stat (${entry.error.errno})`);
    if (entry.kind === 'dir') {
      // The parent's subtree came with the diff (a directory listed without one has none).
      const dir = await this.saveDir(abs, rel, entry.parentSubtree ?? null, listed);
      const sealing = dir.treeId.then((subtree) => nodeOf(entry, 'dir', { subtree }));
      // Awaited by this directory's own seal; a walk that fails first never gets there.
      sealing.catch(() => undefined);
      return { sealing };
    }
    if (entry.kind === 'symlink') {
      if (entry.linkTarget === undefined) {
        throw new SkippedEntry(`cannot read link (${entry.error?.errno ?? 'unknown'})`);
      }
      return nodeOf(entry, 'symlink', { linkTarget: entry.linkTarget });
    }
    if (entry.kind === 'file') return this.saveFileEntry(abs, rel, entry);
    throw new SkippedEntry('special file (device, socket or fifo) not backed up');
  }

  /** A file not read in a batch. */
  private saveFileEntry(abs: string, rel: string, entry: DiffEntry): Promise<TreeNode> {
    this.stats.bytesScanned += entry.size;
    return this.readAlone(abs, rel, entry);
  }

  /** A file read on its own (not in a batch, or grown past what its batch read). */
  private async readAlone(abs: string, rel: string, entry: DiffEntry): Promise<TreeNode> {
    // Small files are many and quick, large ones few and long: each kind has its own bound.
    const slots = entry.size <= this.ctx.config.chunker.minSize ? this.smallFiles : this.readers;
    return this.fileSaved(rel, entry, await slots.use(() => this.readFile(abs, rel, entry.size)));
  }

  /** Counts a saved file and makes its tree node. */
  private fileSaved(rel: string, entry: DiffEntry, { content, bytes }: FileContent): TreeNode {
    if (entry.existed) this.stats.filesChanged++;
    else this.stats.filesNew++;
    this.filesDone++;
    this.bytesDone += Math.max(0, entry.size - bytes);
    this.emit(rel);
    return nodeOf(entry, 'file', { size: bytes, content });
  }

  /**
   * Reads a file through the pool, part by part: a pool thread reads, chunks and hashes it (and
   * encodes a small file's single chunk right there); new chunks of a large file come back as
   * plaintext and are encoded on whichever thread is free, so one huge file still keeps every
   * core busy. At most CHUNKS_IN_FLIGHT of a file's chunks are being encoded at once.
   */
  private async readFile(abs: string, rel: string, expected: number): Promise<FileContent> {
    const file = this.pool.openFile(abs, this.fileContext(), expected);
    const maxPart = this.limiter ? Math.min(PART_BYTES, this.limiter.burstBytes) : PART_BYTES;
    const content: string[] = [];
    const inFlight: Promise<void>[] = [];
    const compression = { tryCompress: true, decided: false };
    let position = 0;
    try {
      for (;;) {
        throwIfCancelled(this.signal, 'the backup');
        const part = await file.next(maxPart);
        if (part.status === 'error') {
          this.stats.bytesRead += part.position - position;
          throw new SkippedEntry(readErrorReason(part));
        }
        position += part.bytesRead;
        this.stats.bytesRead += part.bytesRead;
        for (const chunk of part.chunks) {
          content.push(chunk.id);
          const saving = this.saveChunk(abs, rel, chunk, compression);
          saving.catch(() => undefined);
          inFlight.push(saving);
          if (inFlight.length >= CHUNKS_IN_FLIGHT) await inFlight.shift();
        }
        if (part.eof) break;
        if (this.limiter) await this.limiter.take(part.bytesRead, this.signal);
      }
      for (const saving of inFlight.splice(0)) await saving;
    } finally {
      await Promise.allSettled(inFlight);
      await file.close();
    }
    return { content, bytes: position };
  }

  private async saveChunk(
    abs: string,
    rel: string,
    chunk: PartChunk,
    compression: { tryCompress: boolean; decided: boolean },
  ): Promise<void> {
    const length = chunk.length;
    if (chunk.kind === 'sealed') {
      const { id, sealed, compressed } = chunk;
      const blob = { id, type: 'data' as const, sealed, compressed, uncompressedLength: length };
      this.countSaved(length, await this.saver!.saveEncoded(blob));
    } else if (chunk.kind === 'plain' || !this.saver!.knows(chunk.id)) {
      // A "known" chunk the repository does not have means the filter's 64 bits matched another
      // blob: the bytes are read again here and stored like any new chunk.
      const data = chunk.kind === 'plain' ? chunk.data : await this.rereadChunk(abs, chunk);
      const outcome = await this.saver!.save('data', data, chunk.id, compression.tryCompress, true);
      this.countSaved(length, outcome);
      // The first chunk that is actually encoded decides for the rest of the file: media and
      // archives are incompressible throughout, so later chunks skip the attempt.
      if (outcome.isNew && !compression.decided) {
        compression.decided = true;
        compression.tryCompress = outcome.compressed;
      }
    }
    this.bytesDone += length;
    this.emit(rel);
  }

  private async rereadChunk(abs: string, chunk: PartChunk): Promise<Buffer> {
    const data = Buffer.allocUnsafeSlow(chunk.length);
    let n = 0;
    try {
      const fh = await open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        while (n < chunk.length) {
          const r = await fh.read(data, n, chunk.length - n, chunk.offset + n);
          if (r.bytesRead === 0) break;
          n += r.bytesRead;
        }
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new SkippedEntry(`read failed at byte ${chunk.offset + n} (${errno(err)})`);
    }
    if (n !== chunk.length || blobId(data) !== chunk.id) throw new SkippedEntry('changed while it was read');
    return data;
  }

  /** What pool threads need to read this repository's files; the known-blob filter is built once. */
  private fileContext(): ReadContext {
    if (!this.readContext) {
      const index = this.index!;
      const gear = new Int32Array(new SharedArrayBuffer(this.ctx.gear.byteLength));
      gear.set(this.ctx.gear);
      this.readContext = {
        key: this.ctx.key,
        gear,
        chunker: this.ctx.config.chunker,
        compressionLevel: compressionLevel(this.ctx.config),
        known: (this.seams.knownBlobs ?? KnownBlobFilter.fromIndex(index)).table,
      };
    }
    return this.readContext;
  }

  private async saveBlob(
    type: 'data' | 'tree',
    bytes: Buffer,
    id: string,
    tryCompress: boolean,
    give = false,
  ): Promise<{ isNew: boolean; compressed: boolean }> {
    // Read first: a buffer given away is detached by the time the save returns.
    const length = bytes.length;
    const outcome = await this.saver!.save(type, bytes, id, tryCompress, give);
    this.countSaved(length, outcome);
    return outcome;
  }

  private countSaved(plaintextBytes: number, outcome: SaveOutcome): void {
    if (!outcome.isNew) return;
    this.stats.blobsNew++;
    this.stats.bytesNew += plaintextBytes;
    this.stats.bytesStored += outcome.storedBytes;
  }
}

/** The path of `name` inside the directory at `rel` (the source root is ''). */
function relChild(rel: string, name: string): string {
  return rel === '' ? name : `${rel}/${name}`;
}

function readErrorReason(e: { stage: 'open' | 'read'; errno: string; position: number }): string {
  return e.stage === 'open' ? `cannot open (${e.errno})` : `read failed at byte ${e.position} (${e.errno})`;
}
