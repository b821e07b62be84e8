import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import { gearTableFromSeed } from '../chunker/fastcdc.js';
import { type IndexEntry, loadMasterIndex, type MasterIndex } from '../index/master-index.js';
import { decodeBlob } from '../pack/blob-codec.js';
import { packPath } from '../pack/pack-writer.js';
import { decodeTree, type TreeNode } from '../tree/tree.js';
import type { RepositoryConfig } from './repository-config.js';

/** What every engine stage needs once a repository is open: storage, the master key, the config. */
export class RepositoryContext {
  readonly gear: Int32Array;

  constructor(
    readonly backend: Backend,
    readonly key: Buffer,
    readonly config: RepositoryConfig,
  ) {
    this.gear = gearTableFromSeed(Buffer.from(config.chunker.gearSeed, 'hex'));
  }

  loadIndex(): Promise<MasterIndex> {
    return loadMasterIndex(this.backend, this.key);
  }

  async loadBlob(entry: IndexEntry): Promise<Buffer> {
    const sealed = await this.backend.load(packPath(entry.packId), { offset: entry.offset, length: entry.length });
    return decodeBlob(this.key, sealed, entry, entry.packId);
  }

  async loadTree(index: MasterIndex, treeId: string): Promise<TreeNode[]> {
    const entry = index.get(treeId);
    if (!entry || entry.type !== 'tree') {
      throw new CofferError('RepositoryCorrupt', `tree ${treeId} is not in the index`, { treeId });
    }
    return decodeTree(await this.loadBlob(entry), treeId);
  }
}
