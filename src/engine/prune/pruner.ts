/**
 * Prune: garbage collection that is safe while backups run in the same repository.
 *
 *   mark   Blobs needed = every blob reachable from a committed or pending snapshot. Packs that hold
 *          none of them (and pack files no index lists) are condemned: written to condemned/<id>,
 *          not deleted. Mostly dead packs have their live blobs copied into new packs (indexed
 *          first), then are condemned too. Backups that start after the mark see the list and do
 *          not deduplicate against condemned packs.
 *   sweep  For each list whose `backupsRunningAtHaveEnded(markTime)` is true: reload snapshots and
 *          index, keep (revive) every condemned pack that holds a needed blob with no other copy
 *          (a backup that started before the mark may have reused it), write index files without
 *          the others, remove the old index files, delete the packs, remove the list.
 *
 * Every step writes new files before removing old ones, so a crash or cancel at any instant leaves
 * a repository that checks clean (at most unindexed packs and condemned lists, reported as info).
 * One prune per repository at a time (the catalog enforces it); backups, restores and checks may
 * run alongside.
 */
import { throwIfCancelled } from '../cancellation.js';
import type { BlobType } from '../pack/blob-codec.js';
import { decodeBlob } from '../pack/blob-codec.js';
import {
  type IndexedPack,
  type IndexFileContent,
  loadAllFiles,
  MasterIndex,
  readIndexFile,
  writeIndexFile,
} from '../index/master-index.js';
import { packPath, PackWriter } from '../pack/pack-writer.js';
import type { RepositoryContext } from '../repository/repository-context.js';
import { loadLiveSnapshots } from '../snapshot/snapshot.js';
import {
  type CondemnedList,
  loadCondemnedLists,
  removeCondemnedList,
  stampCondemnedList,
  writeCondemnedList,
} from './condemned.js';
import type { PruneOptions, PruneProgress, PruneReport } from './prune-types.js';

/** A pack is repacked when more than this share of its bytes is dead. */
export const REPACK_THRESHOLD = 0.3;

/**
 * Index compaction (see compactIndex): an index file with fewer blobs than this is "small"; when
 * more than COMPACT_INDEX_FILES_OVER files are small, they are folded into files of up to this
 * many blobs each (about 5 MB sealed). Why: every backup that stores anything adds an index file,
 * and every backup, restore and check loads them all, one request each (on S3, one GET each).
 */
export const INDEX_FILE_TARGET_BLOBS = 100_000;
export const COMPACT_INDEX_FILES_OVER = 8;

/** What the repository looks like at one instant: snapshots first, then the index they rely on. */
interface RepoState {
  indexFiles: Map<string, IndexFileContent>;
  /** Indexed packs (first listing wins; listings of one pack are identical). */
  packs: Map<string, IndexedPack>;
  /** Blob id -> every indexed pack holding a copy. */
  homes: Map<string, string[]>;
  /** Blobs reachable from a committed or pending snapshot (tree and data). */
  needed: Set<string>;
}

export async function runPrune(ctx: RepositoryContext, opts: PruneOptions): Promise<PruneReport> {
  return new Pruner(ctx, opts).run();
}

class Pruner {
  private readonly dryRun: boolean;
  private readonly report: PruneReport;
  private readonly answers = new Map<number, Promise<boolean>>();
  /** What the sweep did (or, in a dry run, would do) to index files: compactIndex starts from there. */
  private swept: { removed: Set<string>; carried: IndexedPack[] } = { removed: new Set(), carried: [] };

  constructor(
    private readonly ctx: RepositoryContext,
    private readonly opts: PruneOptions,
  ) {
    this.dryRun = opts.dryRun ?? false;
    this.report = {
      packsDeleted: 0,
      bytesFreed: 0,
      packsCondemned: 0,
      packsRepacked: 0,
      bytesRepacked: 0,
      indexFilesRewritten: 0,
      indexFilesCompacted: 0,
      unreferencedBlobs: 0,
      durationMs: 0,
      dryRun: this.dryRun,
      packsRevived: 0,
      packsKeptPartlyUsed: 0,
      bytesUnreferencedKept: 0,
      condemnedListsWaiting: 0,
      packsWaiting: 0,
    };
  }

  private cancelled(): void {
    throwIfCancelled(this.opts.signal, 'the prune');
  }

  private progress(phase: PruneProgress['phase'], done: number, total: number): void {
    this.opts.onProgress?.({ phase, done, total });
  }

  async run(): Promise<PruneReport> {
    const started = performance.now();
    this.cancelled();
    const { backend, key } = this.ctx;
    let lists = await loadCondemnedLists(backend, key);
    // A crash between writing a list and stamping it leaves it unstamped; it has been visible since
    // then, so stamping it now is as safe as when the mark made it.
    if (!this.dryRun) {
      const stamped: CondemnedList[] = [];
      for (const l of lists)
        stamped.push(l.markTime === null ? await stampCondemnedList(backend, key, l) : l);
      lists = stamped;
    }
    const mark = await this.mark(lists);
    if (mark.list) lists.push(mark.list);
    await this.sweep(lists, mark.copied);
    await this.compactIndex();
    this.report.durationMs = Math.round(performance.now() - started);
    return this.report;
  }

  private async loadState(condemned: ReadonlySet<string>): Promise<RepoState> {
    const { backend, key } = this.ctx;
    // Snapshots before the index: a snapshot's index file is written before the snapshot, so every
    // snapshot we see has its trees in the index we load next.
    const forgetting = new Set(this.dryRun ? (this.opts.dryRunForget ?? []) : []);
    const snapshots = (await loadLiveSnapshots(backend, key)).filter((s) => !forgetting.has(s.id));
    const indexFiles = await loadAllFiles(backend, 'index', (name) => readIndexFile(backend, key, name));
    const index = new MasterIndex(condemned);
    const packs = new Map<string, IndexedPack>();
    const homes = new Map<string, string[]>();
    for (const content of indexFiles.values()) {
      for (const p of content.packs) {
        index.addPack(p);
        if (packs.has(p.id)) continue;
        packs.set(p.id, p);
        for (const b of p.blobs) {
          const h = homes.get(b.id);
          if (h) h.push(p.id);
          else homes.set(b.id, [p.id]);
        }
      }
    }
    const needed = new Set<string>();
    let done = 0;
    this.progress('mark', done, snapshots.length);
    for (const snap of snapshots) {
      const stack = [snap.rootTreeId];
      while (stack.length > 0) {
        this.cancelled();
        const treeId = stack.pop()!;
        if (needed.has(treeId)) continue;
        needed.add(treeId);
        // A tree that cannot be read stops the prune: what it references is unknown.
        for (const n of await this.ctx.loadTree(index, treeId)) {
          for (const id of n.content ?? []) needed.add(id);
          if (n.type === 'dir' && n.subtree) stack.push(n.subtree);
        }
      }
      this.progress('mark', ++done, snapshots.length);
    }
    return { indexFiles, packs, homes, needed };
  }

  private async mark(lists: CondemnedList[]): Promise<{ list: CondemnedList | null; copied: Set<string> }> {
    const { backend, key } = this.ctx;
    const already = new Set<string>();
    for (const l of lists) for (const p of l.packs) already.add(p);
    const state = await this.loadState(already);
    this.cancelled();
    for (const id of state.homes.keys()) if (!state.needed.has(id)) this.report.unreferencedBlobs++;

    const ids = [...state.packs.keys()].filter((id) => !already.has(id)).sort();
    const staying = new Set(ids);
    const condemn: string[] = [];
    // Entirely dead packs first, so they never count as another pack's copy below.
    for (const id of ids) {
      if (!state.packs.get(id)!.blobs.some((b) => state.needed.has(b.id))) {
        condemn.push(id);
        staying.delete(id);
      }
    }
    // Mixed packs, one at a time: a needed blob whose only other copies are in packs that are
    // leaving (or condemned earlier) must be kept here or copied.
    const copied = new Set<string>();
    const repack: { pack: IndexedPack; blobs: IndexedPack['blobs'] }[] = [];
    for (const id of ids) {
      if (!staying.has(id)) continue;
      const pack = state.packs.get(id)!;
      const mustKeep = pack.blobs.filter(
        (b) =>
          state.needed.has(b.id) &&
          !copied.has(b.id) &&
          !state.homes.get(b.id)!.some((q) => q !== id && staying.has(q)),
      );
      const liveBytes = mustKeep.reduce((n, b) => n + b.length, 0);
      const deadShare = 1 - liveBytes / pack.size;
      const hasDead = mustKeep.length < pack.blobs.length;
      if (mustKeep.length === 0) {
        condemn.push(id);
        staying.delete(id);
      } else if (deadShare > REPACK_THRESHOLD) {
        repack.push({ pack, blobs: mustKeep });
        staying.delete(id);
        for (const b of mustKeep) copied.add(b.id);
      } else if (hasDead) {
        this.report.packsKeptPartlyUsed++;
        this.report.bytesUnreferencedKept += pack.blobs
          .filter((b) => !mustKeep.includes(b))
          .reduce((n, b) => n + b.length, 0);
      }
    }
    // Pack files no index lists: leftovers of interrupted backups, or packs of a backup running now
    // whose index is not written yet. Condemning them is safe: a running backup delays the sweep,
    // which then finds them indexed and needed.
    for (const name of await backend.list('data')) {
      const id = name.slice(name.lastIndexOf('/') + 1);
      if (/^[0-9a-f]{64}$/.test(id) && !state.packs.has(id) && !already.has(id)) condemn.push(id);
    }

    if (repack.length > 0) await this.repack(repack);
    for (const r of repack) condemn.push(r.pack.id);
    this.report.packsRepacked = repack.length;
    this.report.packsCondemned = condemn.length;
    if (condemn.length === 0) return { list: null, copied };
    if (this.dryRun) return { list: { name: '(dry run)', markTime: Date.now(), packs: condemn }, copied };
    this.cancelled();
    const unstamped = await writeCondemnedList(backend, key, null, condemn);
    return { list: await stampCondemnedList(backend, key, unstamped), copied };
  }

  /** Copies the given blobs (sealed bytes, verified first) into new packs, then indexes those. */
  private async repack(work: { pack: IndexedPack; blobs: IndexedPack['blobs'] }[]): Promise<void> {
    const { backend, key, config } = this.ctx;
    const total = work.reduce((n, w) => n + w.blobs.length, 0);
    for (const w of work) this.report.bytesRepacked += w.blobs.reduce((n, b) => n + b.length, 0);
    if (this.dryRun) return;
    const writers: Record<BlobType, PackWriter | null> = { data: null, tree: null };
    const stored: IndexedPack[] = [];
    const store = async (type: BlobType): Promise<void> => {
      const writer = writers[type];
      writers[type] = null;
      if (writer) stored.push(await writer.store(key));
    };
    let done = 0;
    this.progress('repack', done, total);
    try {
      for (const w of work) {
        this.cancelled();
        const bytes = await backend.load(packPath(w.pack.id));
        for (const b of w.blobs) {
          const sealed = bytes.subarray(b.offset, b.offset + b.length);
          // Never copy damage forward: a blob that does not verify stops the prune (run check).
          decodeBlob(key, sealed, b, w.pack.id, true);
          const writer = (writers[b.type] ??= new PackWriter(await backend.startUpload()));
          await writer.add({
            id: b.id,
            type: b.type,
            sealed,
            compressed: b.compressed,
            uncompressedLength: b.uncompressedLength,
          });
          if (writer.size >= config.packSize) await store(b.type);
          this.progress('repack', ++done, total);
        }
      }
      await store('data');
      await store('tree');
    } finally {
      // A cancelled or failed repack leaves nothing half-written behind.
      for (const writer of Object.values(writers)) await writer?.abort();
    }
    // Indexed before the old packs are condemned: from then on, readers find the new copies.
    if (stored.length > 0) await writeIndexFile(backend, key, stored);
  }

  private isDue(markTime: number): Promise<boolean> {
    let answer = this.answers.get(markTime);
    if (!answer) {
      answer = this.opts.backupsRunningAtHaveEnded(markTime);
      this.answers.set(markTime, answer);
    }
    return answer;
  }

  private async sweep(lists: CondemnedList[], copiedInDryRun: Set<string>): Promise<void> {
    const { backend, key } = this.ctx;
    const due: CondemnedList[] = [];
    for (const l of lists) {
      if (l.markTime !== null && (await this.isDue(l.markTime))) due.push(l);
      else {
        this.report.condemnedListsWaiting++;
        this.report.packsWaiting += l.packs.length;
      }
    }
    if (due.length === 0) return;
    this.cancelled();
    const condemned = new Set<string>();
    for (const l of lists) for (const p of l.packs) condemned.add(p);
    const doomed = new Set<string>();
    for (const l of due) for (const p of l.packs) doomed.add(p);
    // The re-check: what do committed and pending snapshots need now?
    const state = await this.loadState(condemned);
    const covered = this.dryRun ? copiedInDryRun : new Set<string>();
    for (const id of [...doomed].sort()) {
      const pack = state.packs.get(id);
      if (!pack) continue;
      const revived = pack.blobs.some(
        (b) =>
          state.needed.has(b.id) &&
          !covered.has(b.id) &&
          !state.homes.get(b.id)!.some((q) => q !== id && !doomed.has(q)),
      );
      if (revived) {
        doomed.delete(id);
        this.report.packsRevived++;
      }
    }
    this.cancelled();

    // Index first: new files without the doomed packs, then remove the old ones. Only then may a
    // pack go, so no index ever names a deleted pack.
    const rewrite = [...state.indexFiles].filter(([, c]) => c.packs.some((p) => doomed.has(p.id)));
    const rewritten = new Set(rewrite.map(([name]) => name));
    // Packs also listed in a file that stays (e.g. after a crash between writing and removing index
    // files) need no second listing.
    const keptElsewhere = new Set<string>();
    for (const [name, c] of state.indexFiles) {
      if (!rewritten.has(name)) for (const p of c.packs) keptElsewhere.add(p.id);
    }
    const carried = new Map<string, IndexedPack>();
    for (const [, c] of rewrite) {
      for (const p of c.packs) if (!doomed.has(p.id) && !keptElsewhere.has(p.id)) carried.set(p.id, p);
    }
    this.report.indexFilesRewritten = rewrite.length;
    this.swept = { removed: rewritten, carried: [...carried.values()] };
    const doomedList = [...doomed];
    const total = doomedList.length;
    let done = 0;
    this.progress('sweep', done, total);
    if (!this.dryRun) {
      if (carried.size > 0) await writeIndexFile(backend, key, [...carried.values()]);
      for (const [name] of rewrite) await backend.remove(`index/${name}`);
    }
    for (const id of doomedList) {
      this.cancelled();
      const st = await backend.stat(packPath(id));
      if (st) {
        if (!this.dryRun) await backend.remove(packPath(id));
        this.report.packsDeleted++;
        this.report.bytesFreed += st.size;
      }
      this.progress('sweep', ++done, total);
    }
    if (!this.dryRun) for (const l of due) await removeCondemnedList(backend, l);
  }

  /**
   * Folds the small index files into few (INDEX_FILE_TARGET_BLOBS). Runs after the sweep, on a
   * fresh listing: the sweep has already removed every listing of a deleted pack, and only a
   * prune (one per vault at a time) removes index files, so what is folded here is exactly what
   * the files say. Backups running meanwhile only add files, which this does not touch; readers
   * that list the directory while the old files go find the new ones (loadAllFiles). New files
   * are written before the old ones are removed: a crash in between leaves packs listed twice
   * (identically), which readers accept and the next prune folds away.
   */
  private async compactIndex(): Promise<void> {
    this.cancelled();
    const { backend, key } = this.ctx;
    const files = await loadAllFiles(backend, 'index', (name) => readIndexFile(backend, key, name));
    if (this.dryRun) {
      // Nothing was written: fold what the sweep would have left.
      for (const name of this.swept.removed) files.delete(name);
      if (this.swept.carried.length > 0) files.set('(sweep)', { version: 1, packs: this.swept.carried });
    }
    const blobsOf = (c: IndexFileContent) => c.packs.reduce((n, p) => n + p.blobs.length, 0);
    const small = [...files].filter(([, c]) => blobsOf(c) < INDEX_FILE_TARGET_BLOBS);
    if (small.length <= COMPACT_INDEX_FILES_OVER) return;
    const folded = new Set(small.map(([name]) => name));
    // A pack a full file lists stays listed there; the rest are listed once each.
    const listed = new Set<string>();
    for (const [name, c] of files) if (!folded.has(name)) for (const p of c.packs) listed.add(p.id);
    const groups: IndexedPack[][] = [];
    let group: IndexedPack[] = [];
    let blobs = 0;
    for (const [, c] of small) {
      for (const p of c.packs) {
        if (listed.has(p.id)) continue;
        listed.add(p.id);
        if (group.length > 0 && blobs + p.blobs.length > INDEX_FILE_TARGET_BLOBS) {
          groups.push(group);
          group = [];
          blobs = 0;
        }
        group.push(p);
        blobs += p.blobs.length;
      }
    }
    if (group.length > 0) groups.push(group);
    this.report.indexFilesCompacted = small.length;
    if (this.dryRun) return;
    this.cancelled();
    for (const g of groups) await writeIndexFile(backend, key, g);
    for (const [name] of small) await backend.remove(`index/${name}`);
  }
}
