import type { BigIntStats } from 'node:fs';
import { constants as fsc } from 'node:fs';
import { type FileHandle, lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { CofferError, isCofferError } from '../../errors/coffer-error.js';
import { throwIfCancelled } from '../cancellation.js';
import { mapLimit, Semaphore } from '../concurrency.js';
import { StreamingChunker } from '../chunker/fastcdc.js';
import { type MasterIndex, writeIndexFile } from '../index/master-index.js';
import { blobId } from '../pack/blob-codec.js';
import { BlobSaver } from '../repository/blob-saver.js';
import type { RepositoryContext } from '../repository/repository-context.js';
import { loadSnapshot, newSnapshotId, saveSnapshot, type Snapshot } from '../snapshot/snapshot.js';
import { encodeTree, type TreeNode } from '../tree/tree.js';
import type { BackupOptions, BackupProgress, BackupResult, BackupStats } from './backup-types.js';
import { ReadRateLimiter } from './rate-limiter.js';
import { Scanner } from './scanner.js';

/** 1 MiB reads amortise syscalls; with read-ahead at most two per open file are in memory. */
const READ_SIZE = 1024 * 1024;
/** Entries of one directory in flight at once (nested directories multiply this; readers bound it). */
const ENTRY_CONCURRENCY = 4;
/** Files open for reading at once: enough to hide per-file latency, few enough to bound memory. */
const FILE_READERS = 4;
/** Chunks of one file being encoded at once (see readFile). */
const CHUNKS_IN_FLIGHT = 4;

/** An entry below the root that cannot be backed up; it is left out and the reason becomes a warning. */
class SkippedEntry extends Error {}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? String(err);
}

export async function runBackup(ctx: RepositoryContext, opts: BackupOptions): Promise<BackupResult> {
  return new Archiver(ctx, opts).run();
}

class Archiver {
  private readonly root: string;
  private readonly signal: AbortSignal | undefined;
  private readonly limiter: ReadRateLimiter | null;
  private readonly scanner: Scanner;
  private readonly readers = new Semaphore(FILE_READERS);
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
    this.scanner = new Scanner(this.root);
  }

  async run(): Promise<BackupResult> {
    const started = performance.now();
    throwIfCancelled(this.signal, 'the backup');
    await this.checkRoot();
    const index = await this.ctx.loadIndex();
    this.index = index;
    const parent = await this.loadParent();
    const saver = new BlobSaver(this.ctx, index);
    this.saver = saver;
    const summary = parent?.summary;
    if (summary) {
      const files = summary.filesNew + summary.filesChanged + summary.filesUnmodified;
      this.scanner.useEstimate(files, summary.bytesScanned);
    }
    const scan = summary ? Promise.resolve() : this.scanner.run().catch(() => undefined);
    this.phase = 'saving';
    try {
      const rootTreeId = await this.saveDir(this.root, '', parent?.rootTreeId ?? null);
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

  /** Saves a directory's contents as a tree blob (children first) and returns its id. */
  private async saveDir(abs: string, rel: string, parentTreeId: string | null): Promise<string> {
    let rawNames: Buffer[];
    try {
      rawNames = await readdir(abs, { encoding: 'buffer' });
    } catch (err) {
      if (rel === '') {
        throw new CofferError('SourceUnreadable', `the source ${abs} cannot be read (${errno(err)})`, {
          path: abs,
        });
      }
      throw new SkippedEntry(`directory unreadable (${errno(err)})`);
    }
    this.stats.dirs++;
    const parentNodes = await this.loadParentNodes(parentTreeId, rel);
    const names: string[] = [];
    for (const raw of rawNames) {
      const name = raw.toString('utf8');
      // Such a name would come back different on restore; skipping it loudly beats restoring the wrong file.
      if (!Buffer.from(name, 'utf8').equals(raw))
        this.warn(`${rel}/${raw.toString('hex')}`, 'name is not valid UTF-8, skipped');
      else names.push(name);
    }
    names.sort();
    // Entries are handled concurrently so small-file I/O overlaps; results keep name order, so
    // the tree (and its id) does not depend on timing.
    const results = await mapLimit(names, ENTRY_CONCURRENCY, async (name) => {
      throwIfCancelled(this.signal, 'the backup');
      const childRel = rel === '' ? name : `${rel}/${name}`;
      try {
        return await this.saveEntry(join(abs, name), childRel, name, parentNodes.get(name));
      } catch (err) {
        if (err instanceof SkippedEntry) {
          this.warn(childRel, err.message);
          return null;
        }
        throw err;
      }
    });
    const nodes = results.filter((n): n is TreeNode => n !== null);
    const bytes = encodeTree(nodes);
    const id = blobId(bytes);
    await this.saveBlob('tree', bytes, id, true);
    return id;
  }

  private async saveEntry(
    abs: string,
    rel: string,
    name: string,
    prev: TreeNode | undefined,
  ): Promise<TreeNode> {
    let st: BigIntStats;
    try {
      st = await lstat(abs, { bigint: true });
    } catch (err) {
      throw new SkippedEntry(`cannot stat (${errno(err)})`);
    }
    if (st.isDirectory()) {
      const subtree = await this.saveDir(abs, rel, prev?.type === 'dir' ? (prev.subtree ?? null) : null);
      return { ...metadata(name, 'dir', st), subtree };
    }
    if (st.isSymbolicLink()) {
      let linkTarget: string;
      try {
        linkTarget = await readlink(abs);
      } catch (err) {
        throw new SkippedEntry(`cannot read link (${errno(err)})`);
      }
      return { ...metadata(name, 'symlink', st), linkTarget };
    }
    if (st.isFile()) return this.saveFileEntry(abs, rel, name, st, prev);
    throw new SkippedEntry('special file (device, socket or fifo) not backed up');
  }

  private async saveFileEntry(
    abs: string,
    rel: string,
    name: string,
    st: BigIntStats,
    prev: TreeNode | undefined,
  ): Promise<TreeNode> {
    const node = metadata(name, 'file', st);
    const size = Number(st.size);
    this.stats.bytesScanned += size;
    if (
      prev?.type === 'file' &&
      prev.size === size &&
      prev.mtimeNs === node.mtimeNs &&
      prev.ctimeNs === node.ctimeNs &&
      prev.inode === node.inode &&
      prev.content?.every((id) => this.saver!.knows(id))
    ) {
      this.stats.filesUnmodified++;
      this.filesDone++;
      this.bytesDone += size;
      this.emit(rel);
      return { ...node, content: prev.content };
    }
    const { content, bytes } = await this.readers.use(() => this.readFile(abs, rel, st));
    if (prev) this.stats.filesChanged++;
    else this.stats.filesNew++;
    this.filesDone++;
    this.bytesDone += Math.max(0, size - bytes);
    this.emit(rel);
    return { ...node, size: bytes, content };
  }

  private async readFile(
    abs: string,
    rel: string,
    st: BigIntStats,
  ): Promise<{ content: string[]; bytes: number }> {
    let fh: FileHandle;
    try {
      // O_NOFOLLOW: if the entry was swapped for a symlink since lstat, refuse rather than back up its target.
      fh = await open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (err) {
      throw new SkippedEntry(`cannot open (${errno(err)})`);
    }
    const chunker = new StreamingChunker(this.ctx.gear, this.ctx.config.chunker);
    const content: string[] = [];
    const expected = Number(st.size);
    const maxRead = this.limiter ? Math.min(READ_SIZE, this.limiter.burstBytes) : READ_SIZE;
    let position = 0;
    let eof = false;
    let tryCompress = true;
    let decided = false;

    const readNext = async (): Promise<Buffer | null> => {
      if (eof) return null;
      const want = Math.min(maxRead, Math.max(4096, expected - position + 1));
      const buf = Buffer.allocUnsafe(want);
      let n: number;
      try {
        n = (await fh.read(buf, 0, want, position)).bytesRead;
      } catch (err) {
        throw new SkippedEntry(`read failed at byte ${position} (${errno(err)})`);
      }
      position += n;
      this.stats.bytesRead += n;
      // A short read on a regular file means end of file; this saves a second syscall per small file.
      if (n < want) eof = true;
      if (this.limiter) await this.limiter.take(n, this.signal);
      return n === 0 ? null : n === want ? buf : buf.subarray(0, n);
    };

    // A file's chunks are encoded in parallel (on the blob pool); at most CHUNKS_IN_FLIGHT of
    // them at once, so one huge file keeps every thread busy without buffering the whole file.
    const inFlight: Promise<void>[] = [];
    const saveChunk = async (chunk: Buffer): Promise<void> => {
      throwIfCancelled(this.signal, 'the backup');
      const id = blobId(chunk);
      content.push(id);
      const saving = this.saveBlob('data', chunk, id, tryCompress).then((outcome) => {
        // The first chunk that is actually encoded decides for the rest of the file: media and
        // archives are incompressible throughout, so later chunks skip the attempt.
        if (outcome.isNew && !decided) {
          decided = true;
          tryCompress = outcome.compressed;
        }
        this.bytesDone += chunk.length;
        this.emit(rel);
      });
      saving.catch(() => undefined);
      inFlight.push(saving);
      if (inFlight.length >= CHUNKS_IN_FLIGHT) await inFlight.shift();
    };

    let pending = readNext();
    pending.catch(() => undefined);
    try {
      for (;;) {
        const buf = await pending;
        if (!buf) break;
        throwIfCancelled(this.signal, 'the backup');
        // Read-ahead: the next read runs while this buffer is chunked, hashed and encrypted.
        pending = readNext();
        pending.catch(() => undefined);
        for (const chunk of chunker.push(buf)) await saveChunk(chunk);
      }
      const last = chunker.finish();
      if (last) await saveChunk(last);
      for (const saving of inFlight.splice(0)) await saving;
    } finally {
      await Promise.allSettled(inFlight);
      await pending.catch(() => undefined);
      await fh.close();
    }
    return { content, bytes: position };
  }

  private async saveBlob(
    type: 'data' | 'tree',
    bytes: Buffer,
    id: string,
    tryCompress: boolean,
  ): Promise<{ isNew: boolean; compressed: boolean }> {
    const outcome = await this.saver!.save(type, bytes, id, tryCompress);
    if (outcome.isNew) {
      this.stats.blobsNew++;
      this.stats.bytesNew += bytes.length;
      this.stats.bytesStored += outcome.storedBytes;
    }
    return outcome;
  }
}

function metadata(name: string, type: TreeNode['type'], st: BigIntStats): TreeNode {
  return {
    name,
    type,
    mode: Number(st.mode & 0o7777n),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    size: type === 'file' ? Number(st.size) : 0,
    uid: Number(st.uid),
    gid: Number(st.gid),
    inode: st.ino.toString(),
  };
}
