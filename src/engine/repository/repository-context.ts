import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import { gearTableFromSeed } from '../chunker/fastcdc.js';
import { type IndexEntry, loadMasterIndex, type MasterIndex } from '../index/master-index.js';
import { decodeBlob } from '../pack/blob-codec.js';
import { loadCondemnedPacks } from '../prune/condemned.js';
import { packPath } from '../pack/pack-writer.js';
import type { SealedTree } from '../parallel/dir-diff.js';
import { decodeTree, type TreeNode } from '../tree/tree.js';
import type { RepositoryConfig } from './repository-config.js';

/** Tree packs kept in memory (at most ~16 MiB each). */
const TREE_PACK_CACHE = 8;

/** What every engine stage needs once a repository is open: storage, the master key, the config. */
export class RepositoryContext {
  readonly gear: Int32Array;
  private readonly treePacks = new Map<string, Promise<Buffer | null>>();

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
   * Tree packs hold only tree blobs and walks (restore planning, check, incremental backup) read
   * most of them, so whole packs are fetched once and kept, instead of one request per directory.
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

  async loadTree(index: MasterIndex, treeId: string): Promise<TreeNode[]> {
    return decodeTree(await this.loadBlob(treeEntry(index, treeId)), treeId);
  }

  /**
   * A tree blob as stored, not yet opened (authenticated, decompressed, decoded): for a pool
   * thread to open (dir-diff.ts). Its bytes are a copy, never a view of a cached pack, so that
   * posting it to a thread copies the blob and not the whole pack.
   */
  async sealedTree(index: MasterIndex, treeId: string): Promise<SealedTree> {
    const entry = treeEntry(index, treeId);
    return {
      id: treeId,
      packId: entry.packId,
      compressed: entry.compressed,
      uncompressedLength: entry.uncompressedLength,
      // A copy with an ArrayBuffer of its own.
      sealed: new Uint8Array(await this.sealedBytes(entry)),
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
