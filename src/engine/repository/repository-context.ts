import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import { gearTableFromSeed } from '../chunker/fastcdc.js';
import { type IndexEntry, loadMasterIndex, type MasterIndex } from '../index/master-index.js';
import { decodeBlob } from '../pack/blob-codec.js';
import { loadCondemnedPacks } from '../prune/condemned.js';
import { packRanges } from '../pack/pack-ranges.js';
import { packPath } from '../pack/pack-writer.js';
import type { SealedTree } from '../parallel/dir-diff.js';
import { decodeTree, type TreeNode } from '../tree/tree.js';
import type { RepositoryConfig } from './repository-config.js';

/** Tree packs kept in memory for walks (at most ~16 MiB each; see treePack). */
const TREE_PACK_CACHE = 8;

/**
 * Tree blobs a backup asks for in the same turn of the event loop are fetched together, one read per run
 * of neighbours in a pack: blobs closer than TREE_READ_GAP share a read of at most TREE_READ_MAX
 * bytes (see sealedTreeBytes).
 */
const TREE_READ_GAP = 64 * 1024;
const TREE_READ_MAX = 4 * 1024 * 1024;

interface TreeRead {
  entry: IndexEntry;
  resolve: (sealed: Uint8Array) => void;
  reject: (err: unknown) => void;
}

/** What every engine stage needs once a repository is open: storage, the master key, the config. */
export class RepositoryContext {
  readonly gear: Int32Array;
  private readonly treePacks = new Map<string, Promise<Buffer | null>>();
  /** A backup's tree reads waiting for the end of this turn of the event loop, by pack. */
  private readonly treeReads = new Map<string, TreeRead[]>();

  constructor(
    readonly backend: Backend,
    readonly key: Buffer,
    readonly config: RepositoryConfig,
  ) {
    this.gear = gearTableFromSeed(Buffer.from(config.chunker.gearSeed, 'hex'));
  }

  /**
   * Condemned lists first, then the index: a sweep removes a list only after it has rewritten the
   * index without the list's packs, so this order never yields an index entry for a deleted pack
   * that is not also known as condemned. Backups deduplicate only against live copies
   * (`MasterIndex.hasLive`); restores and checks prefer them.
   */
  async loadIndex(): Promise<MasterIndex> {
    const condemned = await loadCondemnedPacks(this.backend, this.key);
    return loadMasterIndex(this.backend, this.key, condemned);
  }

  async loadBlob(entry: IndexEntry): Promise<Buffer> {
    return decodeBlob(this.key, await this.sealedBytes(entry), entry, entry.packId);
  }

  /** A blob's sealed bytes: a view of its tree pack when that is cached, else fetched by range. */
  private async sealedBytes(entry: IndexEntry): Promise<Uint8Array> {
    const pack = entry.type === 'tree' ? await this.treePack(entry.packId) : null;
    if (pack) return pack.subarray(entry.offset, entry.offset + entry.length);
    return this.backend.load(packPath(entry.packId), { offset: entry.offset, length: entry.length });
  }

  /**
   * Walks that open one tree after another (restore planning, check, prune) read most trees of
   * the tree packs they touch, so whole packs are fetched once and kept, instead of one request
   * per directory. An incremental backup needs only its parent's trees, and reads them by range
   * instead (sealedTreeBytes).
   */
  private treePack(packId: string): Promise<Buffer | null> {
    let cached = this.treePacks.get(packId);
    if (cached) {
      this.treePacks.delete(packId);
      this.treePacks.set(packId, cached);
      return cached;
    }
    cached = this.backend.load(packPath(packId)).then(
      (bytes) => bytes,
      () => null,
    );
    this.treePacks.set(packId, cached);
    while (this.treePacks.size > TREE_PACK_CACHE) this.treePacks.delete(this.treePacks.keys().next().value!);
    return cached;
  }

  /**
   * A backup's parent trees, by range: the backup asks for many at once (it compares up to 64
   * directories ahead), and neighbouring trees of a pack then cost one read (on S3, one GET)
   * instead of one each. Whole tree packs (treePack) used to serve backups too, which is one
   * read for a vault with one backup; but after many
   * backups a snapshot's trees are spread over many tree packs that mostly hold older versions,
   * and a no-change backup of a 30,000-file tree with 40 backups of history then read hundreds
   * of MB and peaked at 300 MB.
   */
  private sealedTreeBytes(entry: IndexEntry): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      let reads = this.treeReads.get(entry.packId);
      if (!reads) {
        if (this.treeReads.size === 0) setImmediate(() => this.flushTreeReads());
        this.treeReads.set(entry.packId, (reads = []));
      }
      reads.push({ entry, resolve, reject });
    });
  }

  private flushTreeReads(): void {
    const byPack = [...this.treeReads];
    this.treeReads.clear();
    for (const [packId, reads] of byPack) {
      reads.sort((a, b) => a.entry.offset - b.entry.offset);
      for (const { start, end, items } of packRanges(reads, (r) => r.entry, TREE_READ_GAP, TREE_READ_MAX)) {
        this.backend.load(packPath(packId), { offset: start, length: end - start }).then(
          (bytes) => {
            for (const r of items) {
              const at = r.entry.offset - start;
              r.resolve(bytes.subarray(at, at + r.entry.length));
            }
          },
          (err: unknown) => {
            // A shared read fails as a whole (a truncated pack, say): each tree is then read alone,
            // so that one damaged tree costs only its own directory (archiver.ts re-reads its files).
            if (items.length === 1) items[0]!.reject(err);
            else for (const r of items) this.loadAlone(packId, r);
          },
        );
      }
    }
  }

  private loadAlone(packId: string, r: TreeRead): void {
    this.backend
      .load(packPath(packId), { offset: r.entry.offset, length: r.entry.length })
      .then(r.resolve, r.reject);
  }

  async loadTree(index: MasterIndex, treeId: string): Promise<TreeNode[]> {
    return decodeTree(await this.loadBlob(treeEntry(index, treeId)), treeId);
  }

  /**
   * A tree blob as stored, not yet opened (authenticated, decompressed, decoded): for a pool
   * thread to open (dir-diff.ts). Its bytes are a copy, never a view of a shared read, so that
   * posting it to a thread copies the blob and not its neighbours.
   */
  async sealedTree(index: MasterIndex, treeId: string): Promise<SealedTree> {
    const entry = treeEntry(index, treeId);
    return {
      id: treeId,
      packId: entry.packId,
      compressed: entry.compressed,
      uncompressedLength: entry.uncompressedLength,
      // A copy with an ArrayBuffer of its own.
      sealed: new Uint8Array(await this.sealedTreeBytes(entry)),
    };
  }
}

function treeEntry(index: MasterIndex, treeId: string): IndexEntry {
  const entry = index.get(treeId);
  if (!entry || entry.type !== 'tree') {
    throw new CofferError('RepositoryCorrupt', `tree ${treeId} is not in the index`, { treeId });
  }
  return entry;
}
