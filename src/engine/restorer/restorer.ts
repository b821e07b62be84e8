import { lstat, mkdir, realpath, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CofferError, isCofferError } from '../../errors/coffer-error.js';
import { throwIfCancelled } from '../cancellation.js';
import { mapLimit, Slots } from '../concurrency.js';
import type { IndexEntry, MasterIndex } from '../index/master-index.js';
import { sharedBlobPool } from '../parallel/blob-pool.js';
import type { EntryWork, RestoredMetadata, RestoreWrite } from '../parallel/restore-work.js';
import { packRanges } from '../pack/pack-ranges.js';
import { packPath } from '../pack/pack-writer.js';
import type { RepositoryContext } from '../repository/repository-context.js';
import { loadSnapshot } from '../snapshot/snapshot.js';
import { isSafeName, type TreeNode } from '../tree/tree.js';
import type { RestoreOptions, RestoreProgress, RestoreResult } from './restore-types.js';

/** Blobs closer than this in a pack are fetched with one read; skipping less costs more in requests. */
const MAX_RANGE_GAP = 1024 * 1024;
const MAX_RANGE_SIZE = 32 * 1024 * 1024;
/** Size of a reused range buffer: a whole pack of the default size, so most ranges fit. */
const RANGE_BUFFER_SIZE = 17 * 1024 * 1024;
/** Two packs in flight overlap one pack's read with the other's decryption and writes. */
const PACK_CONCURRENCY = 2;
/** File operations in flight: restores of many small files are bound by syscall latency, not bandwidth. */
const FILE_CONCURRENCY = 64;
/** Directories or symlinks per request to a pool thread (restore-work.ts restoreEntries). */
const ENTRY_BATCH = 256;
/** Batches of symlinks or directory metadata in flight at once (their order does not matter). */
const ENTRY_BATCHES_IN_FLIGHT = 2;

/**
 * A directory, file or symlink to restore, with the metadata it gets. Only what the restore
 * uses is kept, not the tree's node. Why: the plan holds every entry of the snapshot until the
 * end, and the nodes' other fields (ctime, inode, size and their strings) were 3-6 MB of the
 * main thread's 42-48 MB heap restoring the 30,000-file benchmark tree.
 */
interface PlannedEntry {
  rel: string;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds for utimes (see nsToSeconds). */
  mtime: number;
}

interface PlannedLink extends PlannedEntry {
  target: string;
}

interface FilePlan extends PlannedEntry {
  size: number;
  remainingBlobs: number;
  /** Whether the file was created; the first write creates it, later writes wait for that. */
  created: Promise<boolean> | undefined;
}

interface BlobTarget {
  file: number;
  offset: number;
}

interface PlannedBlob {
  entry: IndexEntry;
  targets: BlobTarget[];
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? String(err);
}

/**
 * Seconds for utimes. A double cannot hold nanoseconds at today's epoch (its step is ~0.24 µs),
 * and the nearest double to t.xyz may lie just below it, which the kernel then truncates into the
 * previous microsecond or millisecond. Aiming at the middle of the microsecond keeps every digit
 * down to the microsecond exact.
 */
function nsToSeconds(ns: string): number {
  return (Number(BigInt(ns) / 1000n) + 0.5) / 1e6;
}

export async function runRestore(ctx: RepositoryContext, opts: RestoreOptions): Promise<RestoreResult> {
  return new Restorer(ctx, opts).run();
}

class Restorer {
  private readonly dirs: PlannedEntry[] = [];
  private readonly files: FilePlan[] = [];
  private readonly symlinks: PlannedLink[] = [];
  private readonly packs = new Map<string, Map<string, PlannedBlob>>();
  private readonly warnings: string[] = [];
  /** Files that need a damaged or missing blob, with those blobs: they are not restored. */
  private readonly damaged = new Map<number, Set<string>>();
  private index: MasterIndex | null = null;
  private target = '';
  private phase: RestoreProgress['phase'] = 'planning';
  private filesDone = 0;
  private bytesDone = 0;
  private bytesTotal = 0;
  private readonly isRoot = process.geteuid?.() === 0;
  private readonly uid = process.geteuid?.() ?? -1;
  private readonly gid = process.getegid?.() ?? -1;
  private readonly pool = sharedBlobPool();
  /** File writes in flight across all packs being restored. */
  private readonly writeSlots = new Slots(FILE_CONCURRENCY);
  /**
   * Buffers pack ranges are read into, reused from range to range (at most one per pack being
   * restored). Why: each range read into a fresh buffer was mapped and faulted in page by page,
   * about one page fault per 4 KiB of the vault on top of writing the files. Shared memory, so
   * the engine threads read each sealed blob where it lies (BlobPool.restoreWrite) instead of
   * the main thread copying it into a message.
   */
  private readonly rangeBuffers: Buffer[] = [];

  constructor(
    private readonly ctx: RepositoryContext,
    private readonly opts: RestoreOptions,
  ) {}

  async run(): Promise<RestoreResult> {
    const started = performance.now();
    const signal = this.opts.signal;
    throwIfCancelled(signal, 'the restore');
    const snapshot = await loadSnapshot(this.ctx.backend, this.ctx.key, this.opts.snapshotId);
    this.index = await this.ctx.loadIndex();
    // Everything is planned and validated before the first write, so a hostile or damaged
    // snapshot is refused without leaving anything behind.
    await this.plan(snapshot.rootTreeId);
    this.target = await this.prepareTarget();

    this.phase = 'writing';
    // Parents before children: the batches go one after another, each in order.
    await this.entries(this.dirs, 1, (d) => ({ op: 'mkdir', path: this.abs(d.rel) }));
    // Files with content are created by their first write (one open instead of two); empty ones here.
    await mapLimit(
      this.files.filter((f) => f.remainingBlobs === 0),
      FILE_CONCURRENCY,
      async (f) => {
        throwIfCancelled(signal, 'the restore');
        await this.write(f, { path: this.abs(f.rel), create: true, blob: null, finish: this.metadata(f) });
        this.fileDone(f);
      },
    );
    await mapLimit([...this.packs.keys()], PACK_CONCURRENCY, (packId) => this.restorePack(packId));

    this.phase = 'finishing';
    // A file whose data is damaged is not left behind half-written, where it could pass for good.
    for (const i of this.damaged.keys()) {
      await unlink(this.abs(this.files[i]!.rel)).catch((err: unknown) => {
        if (errno(err) !== 'ENOENT') throw err;
      });
    }
    // Symlinks come last: no file or directory is ever created beneath a path that could be one.
    await this.entries(this.symlinks, ENTRY_BATCHES_IN_FLIGHT, (s) => ({
      op: 'symlink',
      path: this.abs(s.rel),
      target: s.target,
      owner: this.isRoot ? { uid: s.uid, gid: s.gid } : null,
      mtime: s.mtime,
    }));
    // Last, because creating entries inside a directory changes its mtime; deepest first.
    await this.entries([...this.dirs].reverse(), ENTRY_BATCHES_IN_FLIGHT, (d) => ({
      op: 'dir-metadata',
      path: this.abs(d.rel),
      meta: this.metadata(d),
    }));
    this.emit('');
    if (this.damaged.size > 0) throw this.damageReport();
    return {
      snapshotId: snapshot.id,
      target: this.target,
      files: this.files.length,
      dirs: this.dirs.length,
      symlinks: this.symlinks.length,
      bytesWritten: this.bytesDone,
      durationMs: Math.round(performance.now() - started),
      warnings: this.warnings,
    };
  }

  private emit(currentPath: string): void {
    this.opts.onProgress?.({
      phase: this.phase,
      filesDone: this.filesDone,
      filesTotal: this.files.length,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      currentPath,
    });
  }

  // ---- planning ----

  private async plan(rootTreeId: string): Promise<void> {
    const parts = (this.opts.subpath ?? '').split('/').filter((p) => p !== '' && p !== '.');
    let treeId = rootTreeId;
    let prefix = '';
    for (let i = 0; i < parts.length; i++) {
      const nodes = await this.loadCheckedTree(treeId, prefix);
      const node = nodes.find((n) => n.name === parts[i]);
      const here = prefix === '' ? parts[i]! : `${prefix}/${parts[i]}`;
      if (!node) {
        throw new CofferError('InvalidRequest', `${here} is not in the snapshot`, {
          subpath: this.opts.subpath,
        });
      }
      if (node.type !== 'dir') {
        if (i !== parts.length - 1) {
          throw new CofferError('InvalidRequest', `${here} is not a directory in the snapshot`, {
            subpath: this.opts.subpath,
          });
        }
        this.addNode(node, node.name);
        return;
      }
      treeId = node.subtree!;
      prefix = here;
    }
    await this.planTree(treeId, '', prefix);
  }

  private async loadCheckedTree(treeId: string, where: string): Promise<TreeNode[]> {
    const nodes = await this.ctx.loadTree(this.index!, treeId);
    const seen = new Set<string>();
    for (const n of nodes) {
      const shown = where === '' ? JSON.stringify(n.name) : `${where}/${JSON.stringify(n.name)}`;
      if (!isSafeName(n.name)) {
        throw new CofferError(
          'RepositoryCorrupt',
          `snapshot contains an unsafe entry name ${shown}; nothing was restored`,
          {
            path: shown,
            treeId,
          },
        );
      }
      if (seen.has(n.name)) {
        throw new CofferError('RepositoryCorrupt', `snapshot lists ${shown} twice; nothing was restored`, {
          path: shown,
          treeId,
        });
      }
      seen.add(n.name);
    }
    return nodes;
  }

  private async planTree(treeId: string, rel: string, snapshotPath: string): Promise<void> {
    throwIfCancelled(this.opts.signal, 'the restore');
    const nodes = await this.loadCheckedTree(treeId, snapshotPath);
    for (const node of nodes) {
      const childRel = rel === '' ? node.name : `${rel}/${node.name}`;
      this.addNode(node, childRel);
      if (node.type === 'dir') {
        await this.planTree(
          node.subtree!,
          childRel,
          snapshotPath === '' ? node.name : `${snapshotPath}/${node.name}`,
        );
      }
    }
  }

  private addNode(node: TreeNode, rel: string): void {
    const { mode, uid, gid } = node;
    const mtime = nsToSeconds(node.mtimeNs);
    if (node.type === 'dir') {
      this.dirs.push({ rel, mode, uid, gid, mtime });
      return;
    }
    if (node.type === 'symlink') {
      this.symlinks.push({ rel, mode, uid, gid, mtime, target: node.linkTarget! });
      return;
    }
    const fileIndex = this.files.length;
    let offset = 0;
    const content = node.content ?? [];
    for (const id of content) {
      const entry = this.index!.get(id);
      if (!entry || entry.type !== 'data') {
        throw new CofferError(
          'RepositoryCorrupt',
          `data blob ${id} of ${rel} is not in the index; nothing was restored`,
          {
            blobId: id,
            path: rel,
          },
        );
      }
      let pack = this.packs.get(entry.packId);
      if (!pack) this.packs.set(entry.packId, (pack = new Map()));
      let planned = pack.get(id);
      if (!planned) pack.set(id, (planned = { entry, targets: [] }));
      planned.targets.push({ file: fileIndex, offset });
      offset += entry.uncompressedLength;
    }
    this.bytesTotal += offset;
    this.files.push({
      rel,
      mode,
      uid,
      gid,
      mtime,
      size: offset,
      remainingBlobs: content.length,
      created: undefined,
    });
  }

  // ---- writing ----

  private async prepareTarget(): Promise<string> {
    const target = resolve(this.opts.target);
    try {
      await mkdir(target, { recursive: true });
      const real = await realpath(target);
      const st = await lstat(real);
      if (!st.isDirectory()) throw new Error('not a directory');
      return real;
    } catch (err) {
      throw new CofferError(
        'RestoreTargetInvalid',
        `cannot restore into ${target} (${(err as Error).message})`,
        {
          target,
        },
        { cause: err },
      );
    }
  }

  private abs(rel: string): string {
    return join(this.target, ...rel.split('/'));
  }

  /**
   * Directory and symlink work in batches on the pool (restore-work.ts restoreEntries); the first
   * entry that fails stops the restore with RestoreTargetInvalid, warnings are kept.
   */
  private async entries<E extends PlannedEntry>(
    list: E[],
    inFlight: number,
    work: (e: E) => EntryWork,
  ): Promise<void> {
    const batches: E[][] = [];
    for (let i = 0; i < list.length; i += ENTRY_BATCH) batches.push(list.slice(i, i + ENTRY_BATCH));
    await mapLimit(batches, inFlight, async (batch) => {
      throwIfCancelled(this.opts.signal, 'the restore');
      const outcomes = await this.pool.restoreEntries(batch.map(work));
      outcomes.forEach((o, k) => {
        const e = batch[k]!;
        if (!o.ok) throw this.targetError(e.rel, o.why);
        for (const w of o.warnings) this.warnings.push(`${e.rel}: ${w}`);
      });
    });
  }

  private targetError(rel: string, why: string, cause?: unknown): CofferError {
    return new CofferError(
      'RestoreTargetInvalid',
      `${join(this.target, rel)}: ${why}`,
      { target: this.target, path: rel },
      { cause },
    );
  }

  private metadata(e: PlannedEntry): RestoredMetadata {
    const { uid, gid } = e;
    // New entries already belong to us; skipping the no-op chown saves a syscall per file.
    const owner = this.isRoot && (uid !== this.uid || gid !== this.gid) ? { uid, gid } : null;
    return { mtime: e.mtime, mode: e.mode, owner };
  }

  /** One write request to the pool; false when the blob turned out damaged (nothing written). */
  private async write(f: FilePlan, w: RestoreWrite): Promise<boolean> {
    const out = await this.pool.restoreWrite(this.ctx.key, w);
    if (out.status === 'damaged') return false;
    if (out.status === 'error') {
      if (out.stage === 'exists-dir') throw this.targetError(f.rel, 'exists and is a directory');
      const what = {
        create: 'create file',
        open: 'open file',
        write: 'write',
        metadata: 'set times or mode',
      };
      throw this.targetError(f.rel, `cannot ${what[out.stage]} (${out.errno})`);
    }
    this.bytesDone += out.bytes;
    if (out.warning) this.warnings.push(`${f.rel}: ${out.warning}`);
    return true;
  }

  /**
   * Writes one blob into one file. The first write creates the file; later writes wait for that.
   * The file's last blob also sets its metadata in the same request; when other writes of the
   * file were still running at that point, the last one to finish does it separately.
   */
  private async writeBlob(t: BlobTarget, b: PlannedBlob, sealed: Buffer, packId: string): Promise<void> {
    const f = this.files[t.file]!;
    const create = f.created === undefined;
    let created: (ok: boolean) => void = () => undefined;
    if (create) f.created = new Promise<boolean>((resolve) => (created = resolve));
    else if (!(await f.created) || this.damaged.has(t.file)) return;
    const last = f.remainingBlobs === 1;
    let ok = false;
    try {
      ok = await this.write(f, {
        path: this.abs(f.rel),
        create,
        blob: { sealed, ref: b.entry, packId, offset: t.offset },
        finish: last ? this.metadata(f) : null,
      });
    } finally {
      created(ok);
    }
    if (!ok) {
      this.markDamaged(b);
      return;
    }
    f.remainingBlobs--;
    if (!last && f.remainingBlobs === 0) {
      await this.write(f, { path: this.abs(f.rel), create: false, blob: null, finish: this.metadata(f) });
    }
    if (f.remainingBlobs === 0) this.fileDone(f);
    else this.emit(f.rel);
  }

  private fileDone(f: FilePlan): void {
    this.filesDone++;
    this.emit(f.rel);
  }

  private async restorePack(packId: string): Promise<void> {
    const blobs = [...this.packs.get(packId)!.values()].sort((a, b) => a.entry.offset - b.entry.offset);
    for (const { start, end, items } of packRanges(blobs, (b) => b.entry, MAX_RANGE_GAP, MAX_RANGE_SIZE)) {
      throwIfCancelled(this.opts.signal, 'the restore');
      let range: Buffer;
      // A range larger than the reused buffers (a pack above the default size: its last blob took
      // it past 16 MiB) gets shared memory of its own, so its blobs are not copied either.
      const reused = end - start <= RANGE_BUFFER_SIZE;
      const into = reused
        ? (this.rangeBuffers.pop() ?? Buffer.from(new SharedArrayBuffer(RANGE_BUFFER_SIZE)))
        : Buffer.from(new SharedArrayBuffer(end - start));
      try {
        range = await this.ctx.backend.load(packPath(packId), { offset: start, length: end - start }, into);
      } catch (err) {
        if (reused) this.rangeBuffers.push(into);
        // A missing or short pack damages the files that need it, not the rest of the restore.
        if (!isCofferError(err, 'RepositoryCorrupt')) throw err;
        for (const b of items) this.markDamaged(b);
        continue;
      }
      // Each blob goes to a pool thread still sealed: the thread opens it and writes it into its
      // file (restore-work.ts), so decoding and file-system calls spread over every core. The
      // shared semaphore bounds writes in flight.
      const writing: Promise<void>[] = [];
      let failed: unknown = null;
      try {
        for (const b of items) {
          const sealed = range.subarray(b.entry.offset - start, b.entry.offset - start + b.entry.length);
          for (const t of b.targets) {
            if (failed !== null) break;
            if (this.damaged.has(t.file)) continue;
            await this.writeSlots.acquire();
            const w = this.writeBlob(t, b, sealed, packId).then(
              () => this.writeSlots.release(),
              (err: unknown) => {
                this.writeSlots.release();
                failed ??= err;
              },
            );
            writing.push(w);
          }
        }
      } finally {
        // Every write that used the range has ended (a thread read its sealed bytes, or they were
        // copied to one), so the buffer can take the next range.
        await Promise.all(writing);
        if (reused) this.rangeBuffers.push(into);
      }
      if (failed !== null) throw failed;
    }
  }

  private markDamaged(b: PlannedBlob): void {
    for (const t of b.targets) {
      let set = this.damaged.get(t.file);
      if (!set) this.damaged.set(t.file, (set = new Set()));
      set.add(b.entry.id);
    }
  }

  /** RepositoryCorrupt naming every file that was not restored and the blobs behind it. */
  private damageReport(): CofferError {
    const files = [...this.damaged.keys()].sort((a, b) => a - b).map((i) => this.files[i]!.rel);
    const blobs = [...new Set([...this.damaged.values()].flatMap((s) => [...s]))];
    const shown = files.slice(0, 20).join(', ') + (files.length > 20 ? ` and ${files.length - 20} more` : '');
    const restored = this.files.length - files.length;
    return new CofferError(
      'RepositoryCorrupt',
      `${files.length} of ${this.files.length} file(s) were not restored because their data in the vault is damaged: ` +
        `${shown} (blob ${blobs.slice(0, 5).join(', ')}${blobs.length > 5 ? ` and ${blobs.length - 5} more` : ''}); ` +
        `the other ${restored} file(s), the directories and the symlinks were restored into ${this.target}`,
      {
        target: this.target,
        damagedFiles: files.slice(0, 1000),
        damagedBlobs: blobs.slice(0, 1000),
        restoredFiles: restored,
      },
    );
  }
}
