import { constants as fsc } from 'node:fs';
import {
  type FileHandle,
  lstat,
  lutimes,
  mkdir,
  open,
  realpath,
  symlink,
  unlink,
  lchown,
} from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CofferError } from '../../errors/coffer-error.js';
import { throwIfCancelled } from '../cancellation.js';
import { mapLimit, Slots } from '../concurrency.js';
import type { IndexEntry, MasterIndex } from '../index/master-index.js';
import { sharedBlobPool } from '../parallel/blob-pool.js';
import { packPath } from '../pack/pack-writer.js';
import type { RepositoryContext } from '../repository/repository-context.js';
import { loadSnapshot } from '../snapshot/snapshot.js';
import { isSafeName, type TreeNode } from '../tree/tree.js';
import type { RestoreOptions, RestoreProgress, RestoreResult } from './restore-types.js';

/** Blobs closer than this in a pack are fetched with one read; skipping less costs more in requests. */
const MAX_RANGE_GAP = 1024 * 1024;
const MAX_RANGE_SIZE = 32 * 1024 * 1024;
/** Two packs in flight overlap one pack's read with the other's decryption and writes. */
const PACK_CONCURRENCY = 2;
/** File operations in flight: restores of many small files are bound by syscall latency, not bandwidth. */
const FILE_CONCURRENCY = 16;
/** Blobs of one pack range being decoded ahead of the writes (see restorePack). */
const DECODES_IN_FLIGHT = 4;

interface PlannedEntry {
  rel: string;
  node: TreeNode;
}

interface FilePlan extends PlannedEntry {
  size: number;
  remainingBlobs: number;
  /** Settles once the file exists; the first write creates it, later writes wait for that. */
  created?: Promise<void>;
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

function nsToSeconds(ns: string): number {
  return Number(BigInt(ns) / 1000n) / 1e6;
}

export async function runRestore(ctx: RepositoryContext, opts: RestoreOptions): Promise<RestoreResult> {
  return new Restorer(ctx, opts).run();
}

class Restorer {
  private readonly dirs: PlannedEntry[] = [];
  private readonly files: FilePlan[] = [];
  private readonly symlinks: PlannedEntry[] = [];
  private readonly packs = new Map<string, Map<string, PlannedBlob>>();
  private readonly warnings: string[] = [];
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
    for (const d of this.dirs) {
      throwIfCancelled(signal, 'the restore');
      await this.makeDir(d.rel);
    }
    // Files with content are created by their first write (one open instead of two); empty ones here.
    await mapLimit(
      this.files.filter((f) => f.remainingBlobs === 0),
      FILE_CONCURRENCY,
      async (f) => {
        throwIfCancelled(signal, 'the restore');
        await this.finishFile(await this.createFile(f), f);
      },
    );
    await mapLimit([...this.packs.keys()], PACK_CONCURRENCY, (packId) => this.restorePack(packId));

    this.phase = 'finishing';
    // Symlinks come last: no file or directory is ever created beneath a path that could be one.
    for (const s of this.symlinks) {
      throwIfCancelled(signal, 'the restore');
      await this.makeSymlink(s);
    }
    // Deepest first, because creating entries inside a directory changes its mtime.
    for (let i = this.dirs.length - 1; i >= 0; i--) await this.applyDirMetadata(this.dirs[i]!);
    this.emit('');
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
    if (node.type === 'dir') {
      this.dirs.push({ rel, node });
      return;
    }
    if (node.type === 'symlink') {
      this.symlinks.push({ rel, node });
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
    this.files.push({ rel, node, size: offset, remainingBlobs: content.length });
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

  private async makeDir(rel: string): Promise<void> {
    const path = this.abs(rel);
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (err) {
      if (errno(err) !== 'EEXIST')
        throw this.targetError(rel, `cannot create directory (${errno(err)})`, err);
    }
    // Whatever was there before must be a real directory: descending through a symlink could escape the target.
    const st = await lstat(path);
    if (!st.isDirectory()) throw this.targetError(rel, 'exists and is not a directory (possibly a symlink)');
  }

  private targetError(rel: string, why: string, cause?: unknown): CofferError {
    return new CofferError(
      'RestoreTargetInvalid',
      `${join(this.target, rel)}: ${why}`,
      { target: this.target, path: rel },
      { cause },
    );
  }

  /** Creates the file afresh; an existing entry is unlinked, never written through (it may be a symlink or hard link). */
  private async createFile(f: FilePlan): Promise<FileHandle> {
    const path = this.abs(f.rel);
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
    try {
      return await open(path, flags, 0o600);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw this.targetError(f.rel, `cannot create file (${errno(err)})`, err);
      const st = await lstat(path);
      if (st.isDirectory()) throw this.targetError(f.rel, 'exists and is a directory');
      await unlink(path);
      return await open(path, flags, 0o600);
    }
  }

  private async openForWrite(f: FilePlan): Promise<FileHandle> {
    if (!f.created) {
      const creating = this.createFile(f);
      f.created = creating.then(
        () => undefined,
        () => undefined,
      );
      return creating;
    }
    await f.created;
    return open(this.abs(f.rel), fsc.O_WRONLY | fsc.O_NOFOLLOW);
  }

  /** Sets metadata on the handle already open; mtime must come after the file's last write. */
  private async finishFile(fh: FileHandle, f: FilePlan): Promise<void> {
    try {
      await this.applyMetadata(fh, f);
      this.fileDone(f);
    } finally {
      await fh.close();
    }
  }

  private fileDone(f: FilePlan): void {
    this.filesDone++;
    this.emit(f.rel);
  }

  private async restorePack(packId: string): Promise<void> {
    const blobs = [...this.packs.get(packId)!.values()].sort((a, b) => a.entry.offset - b.entry.offset);
    let i = 0;
    while (i < blobs.length) {
      throwIfCancelled(this.opts.signal, 'the restore');
      const start = blobs[i]!.entry.offset;
      let end = start + blobs[i]!.entry.length;
      let j = i + 1;
      while (j < blobs.length) {
        const e = blobs[j]!.entry;
        if (e.offset - end > MAX_RANGE_GAP || e.offset + e.length - start > MAX_RANGE_SIZE) break;
        end = Math.max(end, e.offset + e.length);
        j++;
      }
      const range = await this.ctx.backend.load(packPath(packId), { offset: start, length: end - start });
      // Blobs are opened and decompressed on the pool, DECODES_IN_FLIGHT ahead of the writes,
      // so every core decodes while this loop writes in pack order.
      const group = blobs.slice(i, j);
      const decoding: Promise<Buffer>[] = [];
      const decodeNext = () => {
        const b = group[decoding.length];
        if (!b) return;
        const sealed = range.subarray(b.entry.offset - start, b.entry.offset - start + b.entry.length);
        const p = this.pool.decode(this.ctx.key, sealed, b.entry, packId);
        p.catch(() => undefined);
        decoding.push(p);
      };
      for (let k = 0; k < DECODES_IN_FLIGHT; k++) decodeNext();
      // Writes are not awaited blob by blob: with many small files, each blob is a whole file
      // (create, write, metadata, close), and doing them one after the other left the disk
      // idle between them. The shared semaphore bounds writes (and their buffers) in flight.
      const writing: Promise<void>[] = [];
      let failed: unknown = null;
      try {
        for (let k = 0; k < group.length && failed === null; k++) {
          const plain = await decoding[k]!;
          decodeNext();
          for (const t of group[k]!.targets) {
            await this.writeSlots.acquire();
            if (failed !== null) {
              this.writeSlots.release();
              break;
            }
            const w = this.writeAt(t, plain).then(
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
        await Promise.allSettled(decoding);
        await Promise.all(writing);
      }
      if (failed !== null) throw failed;
      i = j;
    }
  }

  private async writeAt(t: BlobTarget, data: Buffer): Promise<void> {
    const f = this.files[t.file]!;
    const fh = await this.openForWrite(f);
    let finishing = false;
    try {
      let done = 0;
      while (done < data.length) {
        done += (await fh.write(data, done, data.length - done, t.offset + done)).bytesWritten;
      }
      this.bytesDone += data.length;
      finishing = --f.remainingBlobs === 0;
      if (!finishing) this.emit(f.rel);
    } finally {
      if (!finishing) await fh.close();
    }
    if (finishing) await this.finishFile(fh, f);
  }

  private async applyMetadata(fh: FileHandle, e: PlannedEntry): Promise<void> {
    await this.applyOwner(fh, e);
    const t = nsToSeconds(e.node.mtimeNs);
    await fh.utimes(t, t);
    await fh.chmod(e.node.mode);
  }

  private async applyOwner(fh: FileHandle, e: PlannedEntry): Promise<void> {
    // New entries already belong to us; skipping the no-op chown saves a syscall per file.
    if (!this.isRoot || (e.node.uid === this.uid && e.node.gid === this.gid)) return;
    try {
      await fh.chown(e.node.uid, e.node.gid);
    } catch (err) {
      this.warnings.push(`${e.rel}: cannot set owner (${errno(err)})`);
    }
  }

  private async makeSymlink(s: PlannedEntry): Promise<void> {
    const path = this.abs(s.rel);
    try {
      await symlink(s.node.linkTarget!, path);
    } catch (err) {
      if (errno(err) !== 'EEXIST')
        throw this.targetError(s.rel, `cannot create symlink (${errno(err)})`, err);
      const st = await lstat(path);
      if (st.isDirectory()) throw this.targetError(s.rel, 'exists and is a directory');
      await unlink(path);
      await symlink(s.node.linkTarget!, path);
    }
    if (this.isRoot) {
      await lchown(path, s.node.uid, s.node.gid).catch((err: unknown) =>
        this.warnings.push(`${s.rel}: cannot set owner (${errno(err)})`),
      );
    }
    const t = nsToSeconds(s.node.mtimeNs);
    await lutimes(path, t, t).catch((err: unknown) =>
      this.warnings.push(`${s.rel}: cannot set mtime (${errno(err)})`),
    );
  }

  private async applyDirMetadata(d: PlannedEntry): Promise<void> {
    const fh = await open(this.abs(d.rel), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    try {
      await this.applyMetadata(fh, d);
    } finally {
      await fh.close();
    }
  }
}
