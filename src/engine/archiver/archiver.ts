import { constants as fsc } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { CofferError, isCofferError } from '../../errors/coffer-error.js';
import { throwIfCancelled } from '../cancellation.js';
import { mapLanes, Semaphore } from '../concurrency.js';
import { type MasterIndex, writeIndexFile } from '../index/master-index.js';
import { blobId } from '../pack/blob-codec.js';
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
import { compareNames, encodeTree, sameNode, type TreeNode } from '../tree/tree.js';
import type { BackupOptions, BackupProgress, BackupResult, BackupStats } from './backup-types.js';
import { ReadRateLimiter } from './rate-limiter.js';
import { Scanner } from './scanner.js';

/**
 * Files of one directory in flight at once (the open directories along the walk's path multiply
 * this; the two semaphores below bound the reading). Enough to keep every pool thread fed with
 * small files.
 */
const ENTRY_CONCURRENCY = 32;
/**
 * Subdirectories of one directory backed up at once: one, so the walk goes depth first and the
 * directories open at once are bounded by the tree's depth, not its breadth. Each directory being
 * backed up holds its listing, its parent tree's nodes and its new nodes until its last entry is
 * done; with 32 at once about 90 directories were open on the 30,000-file tree. Measured there
 * (bench/engine.ts, coffer alone): peak RSS of a no-change backup 148–164 MB with 32, 139–151
 * with 2, 127–131 with 1; after a 1 % change 181–190, 162–171 and 158–163 MB; first backups
 * about 200 MB in all three. The price: a no-change backup takes 1.07–1.19 s instead of
 * 0.95–1.03 s and a 1 % change 1.28–1.52 s instead of 1.11–1.22 s, as the few files to read are
 * no longer read in several directories at once. Files still run ENTRY_CONCURRENCY at once in
 * every open directory, which keeps the pool threads fed on first backups.
 */
const SUBDIRS_AT_ONCE = 1;
/** Large files being read at once (each holds at most one part, PART_BYTES, plus chunks in flight). */
const FILE_READERS = 4;
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
/** Chunks of one file being encoded at once (see readFile). */
const CHUNKS_IN_FLIGHT = 4;

/** An entry below the root that cannot be backed up; it is left out and the reason becomes a warning. */
class SkippedEntry extends Error {}

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
  private readonly readers = new Semaphore(FILE_READERS);
  private readonly smallFiles = new Semaphore(SMALL_FILES_IN_FLIGHT);
  private readonly smallBatches = new Semaphore(SMALL_BATCHES_IN_FLIGHT);
  private readonly pool: BlobPool = sharedBlobPool();
  private readContext: ReadContext | null = null;
  private saver: BlobSaver | null = null;
  private index: MasterIndex | null = null;
  private phase: BackupProgress['phase'] = 'scanning';
  private filesDone = 0;
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
    this.scanner = new Scanner(this.root, (dir) => this.pool.scanDir(dir, SCAN_AHEAD_ENTRIES));
  }

  async run(): Promise<BackupResult> {
    const started = performance.now();
    throwIfCancelled(this.signal, 'the backup');
    await this.checkRoot();
    // The root's listing (and what it reads ahead) is read while the index and parent load.
    const rootListing = this.pool.scanDir(this.root, SCAN_AHEAD_ENTRIES);
    rootListing.catch(() => undefined);
    const index = await this.ctx.loadIndex();
    this.index = index;
    const parent = await this.loadParent();
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
      const rootTreeId = await this.saveDir(this.root, '', parent?.rootTreeId ?? null, rootListing);
      this.phase = 'finalizing';
      this.emit('');
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

  private emit(currentPath: string): void {
    const cb = this.opts.onProgress;
    if (!cb) return;
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

  private async loadParentNodes(treeId: string | null, rel: string): Promise<Map<string, TreeNode>> {
    const map = new Map<string, TreeNode>();
    if (!treeId) return map;
    try {
      const nodes = await this.ctx.loadTree(this.index!, treeId);
      for (const n of nodes) map.set(n.name, n);
    } catch (err) {
      this.warn(rel || '/', `parent tree unreadable, files re-read (${(err as Error).message})`);
    }
    return map;
  }

  /**
   * Saves a directory's contents as a tree blob (children first) and returns its id. `listed` is
   * its listing when it came with its parent's (read ahead).
   */
  private async saveDir(
    abs: string,
    rel: string,
    parentTreeId: string | null,
    listed?: ScannedDir | Promise<ScannedDir>,
  ): Promise<string> {
    // One request lists the directory and stats every entry on a pool thread (file-work.ts).
    const [listing, parentNodes] = await Promise.all([
      listed ?? this.pool.scanDir(abs, SCAN_AHEAD_ENTRIES),
      this.loadParentNodes(parentTreeId, rel),
    ]);
    if (listing.error !== null) {
      if (rel === '') {
        throw new CofferError('SourceUnreadable', `the source ${abs} cannot be read (${listing.error})`, {
          path: abs,
        });
      }
      throw new SkippedEntry(`directory unreadable (${listing.error})`);
    }
    this.stats.dirs++;
    this.seams.onDirectory?.(rel, 'open');
    // Such a name would come back different on restore; skipping it loudly beats restoring the wrong file.
    for (const hex of listing.invalidNames) this.warn(`${rel}/${hex}`, 'name is not valid UTF-8, skipped');
    const entries = listing.entries.sort((a, b) => compareNames(a.name, b.name));
    // The small files to read are queued in batches at once; each file's entry below waits for
    // its batch, while the walk goes on into the subdirectories.
    const batched = this.readSmallFilesAhead(abs, rel, entries, parentNodes);
    // Entries are handled concurrently so small-file I/O overlaps; results keep name order, so
    // the tree (and its id) does not depend on timing. Files and subdirectories run in lanes of
    // their own, so a subdirectory waiting for its turn never holds up a file.
    let results: (TreeNode | null)[];
    try {
      results = await mapLanes(
        entries,
        (entry) => (entry.kind === 'dir' ? 1 : 0),
        [ENTRY_CONCURRENCY, SUBDIRS_AT_ONCE],
        async (entry) => {
          throwIfCancelled(this.signal, 'the backup');
          const childRel = relChild(rel, entry.name);
          // A subdirectory's listing read ahead is handed on, and let go of here.
          const listed = listing.subdirs?.get(entry.name);
          listing.subdirs?.delete(entry.name);
          try {
            return await this.saveEntry(
              childPath(abs, entry.name),
              childRel,
              entry,
              parentNodes.get(entry.name),
              batched.get(entry.name),
              listed,
            );
          } catch (err) {
            if (err instanceof SkippedEntry) {
              this.warn(childRel, err.message);
              return null;
            }
            throw err;
          }
        },
      );
    } finally {
      // After a failure, no batch is left reading or packing behind the caller's cleanup.
      if (batched.size > 0) await Promise.allSettled(batched.values());
    }
    this.seams.onDirectory?.(rel, 'done');
    const nodes = results.filter((n): n is TreeNode => n !== null);
    if (
      parentTreeId !== null &&
      nodes.length === parentNodes.size &&
      nodes.every((n) => {
        const before = parentNodes.get(n.name);
        return before !== undefined && sameNode(n, before);
      }) &&
      this.saver!.knows(parentTreeId)
    ) {
      // Unchanged since the parent backup (names, metadata, contents, subtrees): the same tree.
      return parentTreeId;
    }
    const bytes = encodeTree(nodes);
    const id = blobId(bytes);
    await this.saveBlob('tree', bytes, id, true);
    return id;
  }

  /**
   * Queues the directory's small files that need reading (new, or changed since the parent) in
   * batches; returns each one's pending read by name. Files are taken in name order, so batches
   * hold neighbours. Not with a read rate limit, which paces reads part by part (readFile).
   */
  private readSmallFilesAhead(
    abs: string,
    rel: string,
    entries: readonly ScannedEntry[],
    parentNodes: ReadonlyMap<string, TreeNode>,
  ): Map<string, Promise<BatchedRead>> {
    const pending = new Map<string, Promise<BatchedRead>>();
    if (this.limiter) return pending;
    const minSize = this.ctx.config.chunker.minSize;
    const batches: ScannedEntry[][] = [];
    let batch: ScannedEntry[] = [];
    let bytes = 0;
    for (const e of entries) {
      if (e.kind !== 'file' || e.error !== undefined || e.size > minSize) continue;
      if (this.unchanged(e, parentNodes.get(e.name))) continue;
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
      b.forEach((e, i) => {
        const one = reading.then((reads) => reads[i]!);
        // Awaited by the entry's save; a failure is reported there (or the walk stopped already).
        one.catch(() => undefined);
        pending.set(e.name, one);
      });
    }
    return pending;
  }

  /** Reads a batch of small files on a pool thread and packs their chunks; one result per file. */
  private async readBatch(abs: string, rel: string, batch: readonly ScannedEntry[]): Promise<BatchedRead[]> {
    throwIfCancelled(this.signal, 'the backup');
    const files = batch.map((e) => ({ path: childPath(abs, e.name), expectedSize: e.size }));
    const outcomes = await this.pool.readSmallFiles(files, this.fileContext());
    const saves = outcomes.map(async (o, i): Promise<BatchedRead> => {
      if (o.status === 'grew') return null;
      if (o.status === 'error') {
        this.stats.bytesRead += o.position;
        return { skipped: readErrorReason(o) };
      }
      this.stats.bytesRead += o.bytesRead;
      const childRel = relChild(rel, batch[i]!.name);
      const compression = { tryCompress: true, decided: false };
      try {
        for (const chunk of o.chunks) await this.saveChunk(files[i]!.path, childRel, chunk, compression);
      } catch (err) {
        if (err instanceof SkippedEntry) return { skipped: err.message };
        throw err;
      }
      return { content: o.chunks.map((c) => c.id), bytes: o.bytesRead };
    });
    // Every save settles before the batch's slot is given back, failed or not.
    const settled = await Promise.allSettled(saves);
    return settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return s.value;
    });
  }

  /** Same size, times and inode as in the parent backup, with every blob still in the vault. */
  private unchanged(
    entry: ScannedEntry,
    prev: TreeNode | undefined,
  ): prev is TreeNode & { content: string[] } {
    return (
      prev?.type === 'file' &&
      prev.size === entry.size &&
      prev.mtimeNs === entry.mtimeNs &&
      prev.ctimeNs === entry.ctimeNs &&
      prev.inode === entry.inode &&
      prev.content !== undefined &&
      prev.content.every((id) => this.saver!.knows(id))
    );
  }

  private async saveEntry(
    abs: string,
    rel: string,
    entry: ScannedEntry,
    prev: TreeNode | undefined,
    batched: Promise<BatchedRead> | undefined,
    listed: ScannedDir | Promise<ScannedDir> | undefined,
  ): Promise<TreeNode> {
    if (entry.error?.stage === 'stat') throw new SkippedEntry(`cannot stat (${entry.error.errno})`);
    if (entry.kind === 'dir') {
      const parentTree = prev?.type === 'dir' ? (prev.subtree ?? null) : null;
      const subtree = await this.saveDir(abs, rel, parentTree, listed);
      return { ...metadata(entry, 'dir'), subtree };
    }
    if (entry.kind === 'symlink') {
      if (entry.linkTarget === undefined) {
        throw new SkippedEntry(`cannot read link (${entry.error?.errno ?? 'unknown'})`);
      }
      return { ...metadata(entry, 'symlink'), linkTarget: entry.linkTarget };
    }
    if (entry.kind === 'file') return this.saveFileEntry(abs, rel, entry, prev, batched);
    throw new SkippedEntry('special file (device, socket or fifo) not backed up');
  }

  private async saveFileEntry(
    abs: string,
    rel: string,
    entry: ScannedEntry,
    prev: TreeNode | undefined,
    batched: Promise<BatchedRead> | undefined,
  ): Promise<TreeNode> {
    const node = metadata(entry, 'file');
    const size = entry.size;
    this.stats.bytesScanned += size;
    if (batched === undefined && this.unchanged(entry, prev)) {
      this.stats.filesUnmodified++;
      this.filesDone++;
      this.bytesDone += size;
      this.emit(rel);
      return { ...node, content: prev.content };
    }
    const read = batched && (await batched);
    if (read && 'skipped' in read) throw new SkippedEntry(read.skipped);
    // Small files are many and quick, large ones few and long: each kind has its own bound.
    const slots = size <= this.ctx.config.chunker.minSize ? this.smallFiles : this.readers;
    const { content, bytes } = read ?? (await slots.use(() => this.readFile(abs, rel, size)));
    if (prev) this.stats.filesChanged++;
    else this.stats.filesNew++;
    this.filesDone++;
    this.bytesDone += Math.max(0, size - bytes);
    this.emit(rel);
    return { ...node, size: bytes, content };
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
        known: (this.seams.knownBlobs ?? KnownBlobFilter.build(index.liveIds(), index.blobCount)).table,
      };
    }
    return this.readContext;
  }

  private async saveBlob(
    type: 'data' | 'tree',
    bytes: Buffer,
    id: string,
    tryCompress: boolean,
  ): Promise<{ isNew: boolean; compressed: boolean }> {
    const outcome = await this.saver!.save(type, bytes, id, tryCompress);
    this.countSaved(bytes.length, outcome);
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

function metadata(entry: ScannedEntry, type: TreeNode['type']): TreeNode {
  return {
    name: entry.name,
    type,
    mode: entry.mode,
    mtimeNs: entry.mtimeNs,
    ctimeNs: entry.ctimeNs,
    size: entry.size,
    uid: entry.uid,
    gid: entry.gid,
    inode: entry.inode,
  };
}
