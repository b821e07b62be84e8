/**
 * Worker threads for the CPU-heavy half of the data path: zstd compression and AES-GCM sealing
 * of new blobs on backup, opening, decompressing and hash-checking them on restore and check. Profiling
 * put compression alone at about two thirds of a backup's CPU time on one core; spreading it
 * over the machine's cores is the largest single speed-up the engine has (docs/backup-performance.md).
 * The threads also list directories and read source files for backups (file-work.ts) and write
 * restored files (restore-work.ts), which spares the main thread its file-system round trips.
 *
 * One pool serves the whole process (a server runs several jobs at once): threads start on
 * first use and are unref'd while idle so they never keep a finished command alive.
 */
import type { Worker } from 'node:worker_threads';
import { CofferError } from '../../errors/coffer-error.js';
import { isErrorCode } from '../../errors/codes.js';
import {
  type BlobType,
  type DamagedBlob,
  encodeBlob,
  type EncodedBlob,
  type LocatedBlob,
  verifyPackBlobs,
} from '../pack/blob-codec.js';
import { buildTree, type DiffRequest, diffDirectory, type DirDiff, type SealedTree } from './dir-diff.js';
import type { TreeNode } from '../tree/tree.js';
import {
  countTree,
  type FilePartOutcome,
  FileSession,
  type ReadContext,
  readSmallFiles,
  type ScannedDir,
  scanDirectories,
  scanSubdirs,
  type SmallFileOutcome,
  type SmallFileRead,
  type TreeCount,
} from './file-work.js';
import type {
  PoolReply,
  PoolRequest,
  PoolResult,
  ReadContextWire,
  RestoreWriteWire,
} from './pool-messages.js';
import {
  type EntryOutcome,
  type EntryWork,
  restoreEntries,
  type RestoreWrite,
  restoreWrite,
  type RestoreWriteOutcome,
} from './restore-work.js';
import { adoptPooled, threadRecycler, wholeBuffer } from '../buffer-recycler.js';
import { engineThreads, mainThreadLane, startEngineWorker, takeThreadStartedAhead } from './thread-start.js';
import { LocalLane } from './local-lane.js';
import { fromWire, partFromWire } from './transfer.js';

export { engineThreads };

/**
 * Blobs smaller than this are encoded on the calling thread: posting them to a worker and back
 * costs about as much as compressing them.
 */
const INLINE_BELOW = 4 * 1024;

/** Batches of directory diffs a thread holds at once, at most (see diffDir). */
const DIFF_BATCHES_PER_THREAD = 1;
/** Directories in one batch at most, and bytes of their parent trees once opened (see diffDir). */
const DIFF_BATCH_DIRS = 64;
const DIFF_BATCH_TREE_BYTES = 256 * 1024;
/** Restore writes per request at most, and bytes of sealed blobs (see restoreWrite). */
const RESTORE_BATCH_WRITES = 16;
const RESTORE_BATCH_BYTES = 1024 * 1024;

interface WriteBatch {
  key: Buffer;
  writes: RestoreWrite[];
  bytes: number;
  waiters: { resolve: (o: RestoreWriteOutcome) => void; reject: (e: unknown) => void }[];
}

type Pending = { resolve: (r: PoolResult) => void; reject: (e: unknown) => void };

/** A diff waiting for a thread (see diffDir). */
interface QueuedDiff {
  dir: DiffRequest;
  context: ReadContext;
  resolve: (d: DirDiff) => void;
  reject: (e: unknown) => void;
}

/** @internal */
export interface PoolThread {
  worker: Worker | LocalLane;
  inFlight: number;
  /** Batches of diffs among them (see diffDir). */
  diffBatches: number;
  /** Read contexts this thread has been sent. */
  contexts: Set<number>;
  /** Set when the thread died: a request to it (a file session it held) fails at once. */
  dead: Error | null;
  /** Buffers this thread made that the main thread is done with, sent with its next request. */
  released: ArrayBuffer[];
}

export class BlobPool {
  private readonly threads: PoolThread[] = [];
  private readonly pending = new Map<number, Pending & { thread: PoolThread }>();
  private readonly contextIds = new WeakMap<ReadContext, number>();
  /** Buffers that came from threads, and the thread that made each (see release). */
  private readonly fromThreads = new WeakMap<ArrayBuffer, PoolThread>();
  private seq = 0;
  /** Restore writes gathered for the next batch (see restoreWrite). */
  private writeBatch: WriteBatch | null = null;
  /** Diffs no thread has yet, first come first (see diffDir). */
  private readonly diffQueue: QueuedDiff[] = [];

  /**
   * `size` lanes in all; with `lane`, one of them is the main thread's own (local-lane.ts) and
   * the others worker threads.
   */
  constructor(
    private readonly size: number,
    private readonly lane = false,
  ) {}

  /** Engine threads the pool runs work on (0: everything inline), the main thread's lane included. */
  get threadCount(): number {
    return this.size;
  }

  /** Worker threads running now (the main thread's lane is not one). */
  get workerThreadsRunning(): number {
    return this.threads.filter((t) => !(t.worker instanceof LocalLane)).length;
  }

  /**
   * Compresses (when worthwhile) and seals a blob; same result as encodeBlob. With `give`, the
   * caller hands the plaintext over: when it is a whole ArrayBuffer it moves to the thread
   * without a copy, and the caller must not use it afterwards.
   */
  async encode(
    key: Buffer,
    type: BlobType,
    plaintext: Buffer,
    id: string,
    level: number,
    give = false,
  ): Promise<EncodedBlob> {
    const length = plaintext.length;
    if (this.size === 0 || length < INLINE_BELOW) return encodeBlob(key, type, plaintext, id, level);
    // Otherwise a copy the worker can own: the caller's buffer may be a slice of a larger one.
    const data = give ? wholeBuffer(plaintext) : copyOut(plaintext);
    // A chunk read on a thread is best encoded there, when that thread is as free as any: else
    // its buffer travels back there afterwards (see release).
    const home = give ? this.claim(data) : undefined;
    const thread = this.pick(home);
    const sendBack = home !== undefined && home !== thread;
    const seq = ++this.seq;
    const req: PoolRequest = { op: 'encode', seq, key, type, id, level, data, length, sendBack };
    const reply = await this.post(req, [data], thread);
    if (reply.kind !== 'blob') throw new Error(`blob pool: ${reply.kind} reply to an encode`);
    if (reply.plain && home) this.sendHome(reply.plain, home);
    return {
      id,
      type,
      sealed: this.adopt(reply.data, reply.length, thread),
      compressed: reply.compressed,
      uncompressedLength: length,
    };
  }

  /**
   * Lists a directory and lstats its entries, and its subdirectories' up to about `ahead`
   * entries in all (file-work.ts scanDirectories).
   */
  async scanDir(path: string, ahead = 0): Promise<ScannedDir> {
    if (this.size === 0) return scanDirectories(path, ahead);
    const reply = await this.post({ op: 'scan', seq: ++this.seq, path, ahead }, [], this.pick());
    if (reply.kind !== 'scan') throw new Error(`blob pool: ${reply.kind} reply to a scan`);
    return reply.dir;
  }

  /**
   * Lists the subdirectories `names` of a directory, in order, with theirs, up to about `ahead`
   * entries in all; the listings are the reply's `subdirs` (file-work.ts scanSubdirs).
   */
  async scanSubdirs(path: string, names: string[], ahead: number): Promise<ScannedDir> {
    if (this.size === 0) return scanSubdirs(path, names, ahead);
    const reply = await this.post(
      { op: 'scan-subdirs', seq: ++this.seq, path, names, ahead },
      [],
      this.pick(),
    );
    if (reply.kind !== 'scan') throw new Error(`blob pool: ${reply.kind} reply to a scan`);
    return reply.dir;
  }

  /** Counts files and bytes under a directory, up to about `ahead` entries (file-work.ts countTree). */
  async countTree(path: string, ahead: number): Promise<TreeCount> {
    if (this.size === 0) return countTree(path, ahead);
    const reply = await this.post({ op: 'count', seq: ++this.seq, path, ahead }, [], this.pick());
    if (reply.kind !== 'count') throw new Error(`blob pool: ${reply.kind} reply to a count`);
    return reply.count;
  }

  /**
   * Lists a directory and compares it with its tree in the parent backup (dir-diff.ts
   * diffDirectory): only what changed, and the subdirectories, come back. Diffs wait in a queue of
   * the pool's and go to a thread in batches, when it holds fewer than DIFF_BATCHES_PER_THREAD.
   * Why batches: most directories take a thread a tenth of a millisecond, and a message to a
   * thread and back took two or three times that. Why the queue: one directory of 18,000 entries
   * keeps a thread for a tenth of a second, and diffs sent to that thread (the least busy when
   * they were sent) waited behind it while the other sat idle. `urgent` puts the diff first: the
   * walk is waiting for it.
   */
  diffDir(path: string, tree: SealedTree, context: ReadContext, urgent = false): Promise<DirDiff> {
    if (this.size === 0) return Promise.resolve(diffDirectory(path, tree, context));
    return new Promise((resolve, reject) => {
      const job: QueuedDiff = { dir: { path, tree }, context, resolve, reject };
      if (urgent) this.diffQueue.unshift(job);
      else this.diffQueue.push(job);
      this.sendDiffs();
    });
  }

  /** Gives queued diffs, in batches, to the threads that have room for one (see diffDir). */
  private sendDiffs(): void {
    while (this.diffQueue.length > 0) {
      // The thread with the fewest batches, then the fewest requests of any kind.
      let thread: PoolThread | undefined;
      for (const t of this.threads) {
        if (t.diffBatches >= DIFF_BATCHES_PER_THREAD) continue;
        const better =
          !thread ||
          t.diffBatches < thread.diffBatches ||
          (t.diffBatches === thread.diffBatches && t.inFlight < thread.inFlight);
        if (better) thread = t;
      }
      if (!thread || (thread.inFlight > 0 && this.threads.length < this.size)) {
        if (this.threads.length >= this.size) return;
        thread = this.spawn();
      }
      // A batch is the queue's first diffs of one read context (two backups in one server process
      // have two), within the batch's bounds.
      const context = this.diffQueue[0]!.context;
      let count = 0;
      let treeBytes = 0;
      for (const job of this.diffQueue) {
        if (count === DIFF_BATCH_DIRS || job.context !== context) break;
        if (count > 0 && treeBytes + job.dir.tree.uncompressedLength > DIFF_BATCH_TREE_BYTES) break;
        treeBytes += job.dir.tree.uncompressedLength;
        count++;
      }
      const batch = this.diffQueue.splice(0, count);
      const to = thread;
      to.diffBatches++;
      const req: PoolRequest = {
        op: 'diff',
        seq: ++this.seq,
        dirs: batch.map((j) => j.dir),
        ...this.contextFor(to, context),
      };
      this.post(req, [], to)
        .then((reply) => {
          if (reply.kind !== 'diffs') throw new Error(`blob pool: ${reply.kind} reply to a diff`);
          batch.forEach((j, i) => j.resolve(reply.diffs[i]!));
        })
        .catch((err: unknown) => {
          for (const j of batch) j.reject(err);
        })
        .finally(() => {
          to.diffBatches--;
          this.sendDiffs();
        });
    }
  }

  /** A changed directory's tree, built and sealed on a thread (dir-diff.ts buildTree). */
  async buildTree(
    tree: SealedTree,
    nodes: TreeNode[],
    drop: string[],
    context: ReadContext,
  ): Promise<EncodedBlob> {
    if (this.size === 0) return buildTree(tree, context.key, nodes, drop, context.compressionLevel);
    const thread = this.pick();
    const req: PoolRequest = {
      op: 'build-tree',
      seq: ++this.seq,
      tree,
      nodes,
      drop,
      ...this.contextFor(thread, context),
    };
    const reply = await this.post(req, [], thread);
    if (reply.kind !== 'tree') throw new Error(`blob pool: ${reply.kind} reply to a tree build`);
    const { id, compressed, uncompressedLength } = reply;
    const sealed = this.adopt(reply.data, reply.length, thread);
    return { id, type: 'tree', sealed, compressed, uncompressedLength };
  }

  /**
   * A source file to read part by part on one thread (file-work.ts FileSession). The first
   * `next` opens it; the file closes at end of file, on an error, or with `close`.
   */
  openFile(path: string, context: ReadContext, expectedSize: number): PooledFile {
    if (this.size === 0) return new InlineFile(path, context, expectedSize);
    return new ThreadFile(this, path, context, expectedSize);
  }

  /**
   * Reads, chunks, hashes and encodes several small files whole on one thread, in one round trip
   * (file-work.ts readSmallFiles); the outcomes are in the order of `files`.
   */
  async readSmallFiles(files: SmallFileRead[], context: ReadContext): Promise<SmallFileOutcome[]> {
    if (this.size === 0) return readSmallFiles(files, context);
    const thread = this.pick();
    const req: PoolRequest = {
      op: 'read-small',
      seq: ++this.seq,
      files,
      ...this.contextFor(thread, context),
    };
    const reply = await this.post(req, [], thread);
    if (reply.kind !== 'small-files') throw new Error(`blob pool: ${reply.kind} reply to a small-file read`);
    const adopt = (data: ArrayBuffer, length: number) => this.adopt(data, length, thread);
    return reply.outcomes.map((o) => (o.status === 'grew' ? o : partFromWire(o, adopt)));
  }

  /**
   * @internal used by ThreadFile and readSmallFiles. How a request names a read context for
   * `thread`: by number, with the context's data the first time that thread sees it (`known` and
   * `gear` are shared memory, not copies). Threads keep it until releaseContext.
   */
  contextFor(thread: PoolThread, context: ReadContext): { context: number; contextData?: ReadContextWire } {
    let id = this.contextIds.get(context);
    if (id === undefined) {
      id = ++this.seq;
      this.contextIds.set(context, id);
    }
    if (thread.contexts.has(id)) return { context: id };
    thread.contexts.add(id);
    return { context: id, contextData: context };
  }

  /** Makes every thread drop a context (the backup that used it is over). */
  async releaseContext(context: ReadContext): Promise<void> {
    const id = this.contextIds.get(context);
    if (id === undefined) return;
    this.contextIds.delete(context);
    const replies: Promise<PoolResult>[] = [];
    for (const t of this.threads) {
      if (!t.contexts.delete(id)) continue;
      replies.push(this.post({ op: 'context-release', seq: ++this.seq, context: id }, [], t));
    }
    await Promise.allSettled(replies);
  }

  /** @internal used by ThreadFile: a request to the thread that holds the file. */
  request(req: PoolRequest, thread: PoolThread): Promise<PoolResult> {
    return this.post(req, [], thread);
  }

  /** @internal used by ThreadFile */
  pickThread(): PoolThread {
    return this.pick();
  }

  /** @internal */
  nextSeq(): number {
    return ++this.seq;
  }

  /**
   * Decodes a blob and writes it into a restored file (restore-work.ts restoreWrite). Writes go
   * to a thread in batches, one request for up to RESTORE_BATCH_WRITES writes or
   * RESTORE_BATCH_BYTES of sealed blobs: those given in one turn of the event loop travel
   * together, the rest in the next batch. Why: one message per file, with a copy of its blob in
   * a buffer of its own, was most of the main thread's work in a restore of many small files.
   * A batch's writes run in order on one thread; a caller that needs one write done before
   * another (a file's creation) awaits it first.
   */
  restoreWrite(key: Buffer, w: RestoreWrite): Promise<RestoreWriteOutcome> {
    if (this.size === 0) return Promise.resolve(restoreWrite(key, w));
    return new Promise((resolve, reject) => {
      let batch = this.writeBatch;
      if (batch && batch.key !== key) {
        this.flushWrites();
        batch = null;
      }
      if (!batch) {
        const fresh: WriteBatch = { key, writes: [], bytes: 0, waiters: [] };
        this.writeBatch = batch = fresh;
        setImmediate(() => {
          if (this.writeBatch === fresh) this.flushWrites();
        });
      }
      batch.writes.push(w);
      batch.waiters.push({ resolve, reject });
      batch.bytes += w.blob?.sealed.length ?? 0;
      if (batch.writes.length >= RESTORE_BATCH_WRITES || batch.bytes >= RESTORE_BATCH_BYTES)
        this.flushWrites();
    });
  }

  private flushWrites(): void {
    const batch = this.writeBatch;
    if (!batch) return;
    this.writeBatch = null;
    // A blob in shared memory (the restorer's pack ranges) is read by the thread where it lies.
    // The others are copied into one buffer for the batch, moved to the thread and back: not one
    // copy and one buffer each. A reused one: a fresh buffer per batch was zeroed and faulted in
    // page by page, two fifths of the main thread's time in a restore of the large benchmark tree.
    let copied = 0;
    for (const w of batch.writes)
      if (w.blob && !inSharedMemory(w.blob.sealed)) copied += w.blob.sealed.length;
    const data = copied > 0 ? threadRecycler.take(copied) : null;
    let at = 0;
    const writes = batch.writes.map((w): RestoreWriteWire => {
      if (!w.blob) return { path: w.path, create: w.create, blob: null, finish: w.finish };
      const { sealed, ref, packId, offset } = w.blob;
      if (inSharedMemory(sealed)) {
        const blob = {
          ref,
          packId,
          offset,
          start: sealed.byteOffset,
          length: sealed.length,
          shared: sealed.buffer as SharedArrayBuffer,
        };
        return { path: w.path, create: w.create, blob, finish: w.finish };
      }
      data!.set(sealed, at);
      at += sealed.length;
      const blob = { ref, packId, offset, start: at - sealed.length, length: sealed.length };
      return { path: w.path, create: w.create, blob, finish: w.finish };
    });
    const req: PoolRequest = {
      op: 'restore-writes',
      seq: ++this.seq,
      key: batch.key,
      writes,
      data: data && wholeBuffer(data),
    };
    this.post(req, req.data ? [req.data] : [], this.pick()).then(
      (reply) => {
        if (reply.kind === 'restored' && reply.data) {
          adoptPooled(reply.data);
          threadRecycler.give(reply.data);
        }
        if (reply.kind !== 'restored' || reply.outcomes.length !== batch.waiters.length) {
          const err = new Error(`blob pool: ${reply.kind} reply to a batch of restore writes`);
          for (const w of batch.waiters) w.reject(err);
          return;
        }
        reply.outcomes.forEach((o, i) => batch.waiters[i]!.resolve(o));
      },
      (err: unknown) => {
        for (const w of batch.waiters) w.reject(err);
      },
    );
  }

  /**
   * Verifies every listed blob of a pack on one thread (blob-codec.ts verifyPackBlobs); the pack's
   * bytes move to the thread, so the caller must be done with them.
   */
  async verifyPack(key: Buffer, bytes: Buffer, blobs: LocatedBlob[], packId: string): Promise<DamagedBlob[]> {
    if (this.size === 0) return verifyPackBlobs(key, bytes, blobs, packId);
    const data = wholeBuffer(bytes);
    const req: PoolRequest = { op: 'verify-pack', seq: ++this.seq, key, packId, data, blobs };
    const reply = await this.post(req, [data], this.pick());
    if (reply.kind !== 'verified') throw new Error(`blob pool: ${reply.kind} reply to a pack verification`);
    return reply.damaged;
  }

  /** Creates directories and symlinks or sets directories' metadata (restore-work.ts restoreEntries). */
  async restoreEntries(batch: EntryWork[]): Promise<EntryOutcome[]> {
    if (this.size === 0) return restoreEntries(batch);
    const reply = await this.post({ op: 'restore-entries', seq: ++this.seq, batch }, [], this.pick());
    if (reply.kind !== 'entries') throw new Error(`blob pool: ${reply.kind} reply to restore entries`);
    return reply.outcomes;
  }

  /** A buffer `thread` sent (its first `length` bytes), which `release` may send back. */
  adopt(data: ArrayBuffer, length: number, thread: PoolThread): Buffer {
    this.fromThreads.set(data, thread);
    return fromWire(data, length);
  }

  /**
   * The caller is done with a buffer a thread sent (a sealed blob now copied into its pack). It
   * goes back with the next request, for that thread to reuse (buffer-recycler.ts). Why: the
   * main thread allocates few objects, so V8 collects it rarely, and its dead blob buffers (with
   * the malloc arenas of the threads that allocated them) reached over a hundred MB of RSS.
   * It goes to the thread that made it: sent to whichever thread was next, a reading thread's
   * chunk buffers piled up in the recycler of the thread that encoded them, past its cap, while
   * the reader kept mapping fresh ones (on the large benchmark tree, 1.1 GB of page faults for
   * 1.8 GB read). Without threads, the buffer goes to this thread's recycler. Buffers not from
   * a thread are left alone.
   */
  release(buf: Buffer): void {
    const ab = buf.buffer;
    if (this.size === 0 && ab instanceof ArrayBuffer) {
      threadRecycler.give(ab);
      return;
    }
    if (!(ab instanceof ArrayBuffer)) return;
    const home = this.claim(ab);
    if (home) this.sendHome(ab, home);
  }

  /** The thread that made `ab`, which the caller now takes charge of (it is no longer tracked). */
  private claim(ab: ArrayBuffer): PoolThread | undefined {
    const home = this.fromThreads.get(ab);
    if (home) this.fromThreads.delete(ab);
    return home;
  }

  /** Queues a buffer for the thread that made it (a dead thread's are left to the collector). */
  private sendHome(ab: ArrayBuffer, home: PoolThread): void {
    if (!home.dead) home.released.push(ab);
  }

  /** Stops the threads; pending requests fail. Only tests and process shutdown need this. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private post(req: PoolRequest, transfer: ArrayBuffer[], thread: PoolThread): Promise<PoolResult> {
    if (thread.dead) return Promise.reject(thread.dead);
    thread.inFlight++;
    if (thread.inFlight === 1) thread.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(req.seq, { resolve, reject, thread });
      if (thread.released.length === 0) {
        thread.worker.postMessage(req, transfer);
      } else {
        const dispose = thread.released;
        thread.released = [];
        thread.worker.postMessage({ ...req, dispose }, [...transfer, ...dispose]);
      }
    });
  }

  /**
   * Starts every thread now. A thread takes 60 to 100 ms to load its code; started as a job
   * begins, that overlaps the vault's key derivation and index load instead of delaying the walk.
   * Started only when work first found both threads busy, the second thread of a no-change
   * backup of the large benchmark tree came up when the walk was a third done.
   */
  warm(): void {
    while (this.threads.length < this.size) this.spawn();
  }

  /**
   * The least busy thread, starting a new one while fewer than `size` exist; `prefer` when it is
   * alive and as little busy as that one.
   */
  private pick(prefer?: PoolThread): PoolThread {
    let best: PoolThread | undefined;
    for (const t of this.threads) if (!best || load(t) < load(best)) best = t;
    if (best && (best.inFlight === 0 || this.threads.length >= this.size)) {
      return prefer && !prefer.dead && load(prefer) <= load(best) ? prefer : best;
    }
    return this.spawn();
  }

  private spawn(): PoolThread {
    // The main thread's lane comes last, after the worker threads. A worker: one the CLI started
    // before its code loaded (thread-start.ts), else a new one.
    const local = this.lane && this.threads.length === this.size - 1;
    const worker = local ? new LocalLane() : (takeThreadStartedAhead() ?? startEngineWorker());
    const thread: PoolThread = {
      worker,
      inFlight: 0,
      diffBatches: 0,
      contexts: new Set(),
      dead: null,
      released: [],
    };
    // An unref before the thread is online does not hold: a thread started ahead of work (warm)
    // and never used kept the process from exiting. Again once online, unless work came since.
    worker.once('online', () => {
      if (thread.inFlight === 0) worker.unref();
    });
    worker.on('message', (reply: PoolReply) => {
      const p = this.pending.get(reply.seq);
      if (!p) return;
      this.pending.delete(reply.seq);
      thread.inFlight--;
      if (thread.inFlight === 0) worker.unref();
      if (reply.ok) p.resolve(reply.result);
      else p.reject(rebuildError(reply.error));
    });
    const fail = (err: Error) => {
      thread.dead ??= err;
      thread.released = [];
      // A thread that dies (out of memory, a crash in the native compressor) fails what it held;
      // later requests go to a fresh thread.
      const i = this.threads.indexOf(thread);
      if (i >= 0) this.threads.splice(i, 1);
      for (const [seq, p] of this.pending) {
        if (p.thread !== thread) continue;
        this.pending.delete(seq);
        p.reject(err);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (code !== 0) fail(new Error(`blob pool thread exited with code ${code}`));
      else fail(new Error('blob pool thread stopped'));
    });
    // After the listeners: adding the 'message' one refs the thread again, and a thread started
    // ahead may be online already, so no 'online' event would come to undo that.
    worker.unref();
    this.threads.push(thread);
    return thread;
  }
}

/**
 * How busy a thread counts as when the pool picks one: the main thread's lane (local-lane.ts) as
 * one request busier than it is, so that a worker thread gets the next request when the two hold
 * as many. Why: a request the lane holds waits for the main thread's own work too, and a worker
 * left with nothing queued sits idle until the main thread hands it more; with no bias the main
 * thread did more than half of the engine's work on a first backup of the large benchmark tree
 * (5.0 s of CPU against the worker's 3.7 s), with it about half (4.2–4.4 s against 4.1–4.2 s).
 */
function load(t: PoolThread): number {
  return t.inFlight + (t.worker instanceof LocalLane ? 1 : 0);
}

/** A view of memory every thread sees (a SharedArrayBuffer): posted by reference, never copied. */
function inSharedMemory(b: Uint8Array): boolean {
  return b.buffer instanceof SharedArrayBuffer;
}

function copyOut(b: Buffer): ArrayBuffer {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy.buffer;
}

function rebuildError(info: {
  name: string;
  message: string;
  code: string | null;
  context: Record<string, unknown>;
}): Error {
  if (info.name === 'CofferError' && info.code !== null && isErrorCode(info.code)) {
    return new CofferError(info.code, info.message, info.context);
  }
  const err = new Error(info.message);
  err.name = info.name;
  return err;
}

/** A file being read for a backup, part by part (see BlobPool.openFile). */
export interface PooledFile {
  /** Reads the next part (at most `maxBytes`); after an `eof` or error outcome, do not call again. */
  next(maxBytes: number): Promise<FilePartOutcome>;
  /** Closes the file early (cancel, a failed save); harmless after the end. */
  close(): Promise<void>;
}

/** With no threads: the same session, on the calling thread. */
class InlineFile implements PooledFile {
  private session: FileSession | null = null;

  constructor(
    private readonly path: string,
    private readonly context: ReadContext,
    private readonly expectedSize: number,
  ) {}

  async next(maxBytes: number): Promise<FilePartOutcome> {
    if (!this.session) {
      const opened = FileSession.open(this.path, this.context, this.expectedSize);
      if (!(opened instanceof FileSession)) return opened;
      this.session = opened;
    }
    return this.session.next(maxBytes);
  }

  async close(): Promise<void> {
    this.session?.close();
  }
}

let sessionSeq = 0;

/** A session on one pool thread: every request of a file goes to the thread that opened it. */
class ThreadFile implements PooledFile {
  private readonly session = ++sessionSeq;
  private thread: PoolThread | null = null;
  private open = false;

  constructor(
    private readonly pool: BlobPool,
    private readonly path: string,
    private readonly context: ReadContext,
    private readonly expectedSize: number,
  ) {}

  async next(maxBytes: number): Promise<FilePartOutcome> {
    const seq = this.pool.nextSeq();
    let req: PoolRequest;
    if (this.thread) {
      req = { op: 'file-next', seq, session: this.session, maxBytes };
    } else {
      this.thread = this.pool.pickThread();
      req = {
        op: 'file-open',
        seq,
        session: this.session,
        path: this.path,
        expectedSize: this.expectedSize,
        maxBytes,
        ...this.pool.contextFor(this.thread, this.context),
      };
    }
    const reply = this.pool.request(req, this.thread);
    this.open = true;
    const result = await reply;
    if (result.kind !== 'part') throw new Error(`blob pool: ${result.kind} reply to a file read`);
    const thread = this.thread;
    const part = partFromWire(result.part, (data, length) => this.pool.adopt(data, length, thread));
    if (part.status === 'error' || part.eof) this.open = false;
    return part;
  }

  async close(): Promise<void> {
    if (!this.open || !this.thread) return;
    this.open = false;
    const closing = { op: 'file-close' as const, seq: this.pool.nextSeq(), session: this.session };
    await this.pool.request(closing, this.thread).catch(() => undefined);
  }
}

let shared: BlobPool | null = null;

/** The process's pool, sized by engineThreads() on first use. */
export function sharedBlobPool(): BlobPool {
  shared ??= new BlobPool(engineThreads(), mainThreadLane());
  return shared;
}

/** Starts the shared pool's first thread ahead of a job's engine work (BlobPool.warm). */
export function warmEngineThreads(): void {
  sharedBlobPool().warm();
}
