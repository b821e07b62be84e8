/**
 * A pack written through to storage blob by blob (Backend.startUpload) instead of built in
 * memory: its bytes are hashed as they are added, in order, and the pack is named by that hash
 * when it is stored. For a local vault a backup then holds no pack in memory at all; a backend
 * that can only store whole objects gathers the pack itself (storage/buffered-upload.ts).
 * Why: packs used to be built in pack-sized buffers, one filling per blob type and one per
 * upload in flight, which was about 50 MB of a backup's peak memory.
 */
import { createHash, type Hash } from 'node:crypto';
import type { ObjectUpload } from '../../storage/backend.js';
import type { IndexedPack } from '../index/master-index.js';
import type { EncodedBlob } from './blob-codec.js';
import { encodePackHeader, type PackedBlob } from './pack-format.js';

/** ~16 MiB: few enough objects for cloud listing and per-request costs, small enough to rewrite in prune. */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

export function packPath(packId: string): string {
  return `data/${packId.slice(0, 2)}/${packId}`;
}

export class PackWriter {
  private readonly hash: Hash = createHash('sha256');
  private readonly blobs: PackedBlob[] = [];
  private offset = 0;
  private readonly writes = new Set<Promise<void>>();

  constructor(private readonly upload: ObjectUpload) {}

  /** Bytes added so far. */
  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.blobs.length;
  }

  /**
   * Adds a blob at the end of the pack; resolves once its bytes are written, after which the
   * blob's buffer may be reused. The place is taken at once, so adds may overlap.
   */
  add(blob: EncodedBlob): Promise<void> {
    const sealed = blob.sealed;
    const at = this.offset;
    this.offset += sealed.length;
    this.hash.update(sealed);
    this.blobs.push({
      id: blob.id,
      type: blob.type,
      offset: at,
      length: sealed.length,
      uncompressedLength: blob.uncompressedLength,
      compressed: blob.compressed,
    });
    const writing = this.upload.write(sealed, at);
    this.writes.add(writing);
    // Failures surface through the caller's await and again through store(); not unhandled here.
    void writing.then(
      () => this.writes.delete(writing),
      () => undefined,
    );
    return writing;
  }

  /** Appends the header, waits for every write and stores the pack under its hash. */
  async store(key: Buffer): Promise<IndexedPack> {
    const header = encodePackHeader(key, this.blobs);
    const at = this.offset;
    this.offset += header.length;
    this.hash.update(header);
    const id = this.hash.digest('hex');
    try {
      await Promise.all([...this.writes, this.upload.write(header, at)]);
      await this.upload.commit(packPath(id));
    } catch (err) {
      await this.upload.abort();
      throw err;
    }
    return { id, size: this.offset, blobs: this.blobs };
  }

  /** Drops the pack (cancel, or a failed backup): nothing of it becomes visible. */
  abort(): Promise<void> {
    return this.upload.abort();
  }
}
