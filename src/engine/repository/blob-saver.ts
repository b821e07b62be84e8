import type { IndexedPack, MasterIndex } from '../index/master-index.js';
import type { BlobType, EncodedBlob } from '../pack/blob-codec.js';
import { type BlobPool, sharedBlobPool } from '../parallel/blob-pool.js';
import { PackBuffers, packPath, PackWriter } from '../pack/pack-writer.js';
import { compressionLevel } from './repository-config.js';
import type { RepositoryContext } from './repository-context.js';

/** Two uploads in flight keep the disk or network busy while the next pack fills, without hoarding memory. */
const MAX_UPLOADS_IN_FLIGHT = 2;
/** Tree packs start this small (see PackWriter): most backups write a few MB of trees at most. */
const TREE_PACK_START_BYTES = 256 * 1024;
/**
 * Plaintext bytes being compressed and sealed at once. Enough to keep every pool thread busy
 * with a few chunks queued; the bound keeps a backup's memory independent of the tree's size.
 */
const ENCODE_BYTES_IN_FLIGHT = 12 * 1024 * 1024;

export interface SaveOutcome {
  /** False when the blob was already in the repository or earlier in this run. */
  isNew: boolean;
  /** Bytes the blob occupies in its pack (compressed and sealed); 0 when deduplicated. */
  storedBytes: number;
  /** Whether zstd was kept for this blob (false when deduplicated). */
  compressed: boolean;
}

/**
 * Deduplicates blobs against the index and this run, and packs new ones. Data and tree blobs go
 * to separate packs so that reading metadata (check, restore planning) fetches only small packs.
 */
export class BlobSaver {
  /** A buffer per upload in flight and per writer filling, reused pack after pack. */
  private readonly buffers: PackBuffers;
  private readonly writers: Record<BlobType, PackWriter>;
  private readonly seen = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private uploadError: unknown = null;
  private readonly encoding = new Set<Promise<unknown>>();
  private encodingBytes = 0;
  private readonly encodeSlots: (() => void)[] = [];
  /** Packs fully stored, ready to be listed in this run's index file. */
  readonly stored: IndexedPack[] = [];

  constructor(
    private readonly ctx: RepositoryContext,
    private readonly index: MasterIndex,
    private readonly pool: BlobPool = sharedBlobPool(),
  ) {
    const size = ctx.config.packSize;
    // One buffer filling and one per upload in flight, reused pack after pack.
    this.buffers = new PackBuffers(MAX_UPLOADS_IN_FLIGHT + 1, size);
    this.writers = {
      data: new PackWriter(size, this.buffers),
      tree: new PackWriter(size, this.buffers, TREE_PACK_START_BYTES),
    };
  }

  /** Blobs that live only in packs a prune has condemned count as unknown: they are stored again. */
  knows(id: string): boolean {
    return this.seen.has(id) || this.index.hasLive(id);
  }

  /**
   * Deduplicates and, for a new blob, encodes it on the pool and adds it to a pack. Callers may
   * keep several saves in flight (a file's chunks are encoded in parallel); the blob is claimed
   * for this run before the first await, so the same content is never encoded twice.
   */
  async save(
    type: BlobType,
    plaintext: Buffer,
    id: string,
    tryCompress: boolean,
    give = false,
  ): Promise<SaveOutcome> {
    if (this.knows(id)) return { isNew: false, storedBytes: 0, compressed: false };
    this.seen.add(id);
    const length = plaintext.length;
    await this.reserve(length);
    // With `give` the plaintext moves to a pool thread (BlobPool.encode): not used after this.
    const level = tryCompress ? compressionLevel(this.ctx.config) : 0;
    const encoded = this.pool.encode(this.ctx.key, type, plaintext, id, level, give);
    this.encoding.add(encoded);
    let blob;
    try {
      blob = await encoded;
    } finally {
      this.encoding.delete(encoded);
      this.release(length);
    }
    return this.addToPack(blob);
  }

  /** Copies the blob into its pack (its buffer goes back to the pool) and stores full packs. */
  private async addToPack(blob: EncodedBlob): Promise<SaveOutcome> {
    const outcome = { isNew: true, storedBytes: blob.sealed.length, compressed: blob.compressed };
    const writer = this.writers[blob.type];
    writer.add(blob);
    this.pool.release(blob.sealed);
    if (writer.size >= this.ctx.config.packSize) await this.startUpload(writer, false);
    return outcome;
  }

  /**
   * Packs a blob that was already encoded elsewhere (a small file read and sealed on a pool
   * thread), unless the repository or this run has it already.
   */
  async saveEncoded(blob: EncodedBlob): Promise<SaveOutcome> {
    if (this.knows(blob.id)) {
      this.pool.release(blob.sealed);
      return { isNew: false, storedBytes: 0, compressed: false };
    }
    this.seen.add(blob.id);
    return this.addToPack(blob);
  }

  /** Stores the partly filled packs and waits for every upload. */
  async flush(): Promise<void> {
    await this.settleEncoding();
    for (const writer of Object.values(this.writers)) {
      await this.startUpload(writer, true);
    }
    await this.drain();
  }

  /** Waits for encodes and uploads already started (used on cancel, so no write is left running behind us). */
  async drain(): Promise<void> {
    await this.settleEncoding();
    while (this.uploads.size > 0) await Promise.race(this.uploads);
    if (this.uploadError) throw this.uploadError;
  }

  private async settleEncoding(): Promise<void> {
    while (this.encoding.size > 0) await Promise.allSettled([...this.encoding]);
  }

  /** Waits until `bytes` more plaintext may be in the pool (one blob always may, however big). */
  private async reserve(bytes: number): Promise<void> {
    while (this.encodingBytes > 0 && this.encodingBytes + bytes > ENCODE_BYTES_IN_FLIGHT) {
      await new Promise<void>((resolve) => this.encodeSlots.push(resolve));
    }
    this.encodingBytes += bytes;
  }

  private release(bytes: number): void {
    this.encodingBytes -= bytes;
    for (const wake of this.encodeSlots.splice(0)) wake();
  }

  private async startUpload(writer: PackWriter, force: boolean): Promise<void> {
    while (this.uploads.size >= MAX_UPLOADS_IN_FLIGHT) await Promise.race(this.uploads);
    if (this.uploadError) throw this.uploadError;
    // Concurrent savers may have waited here for the same writer; only one of them stores it.
    if (writer.count === 0 || (!force && writer.size < this.ctx.config.packSize)) return;
    const pack = writer.finish(this.ctx.key);
    const upload = this.ctx.backend.save(packPath(pack.id), pack.bytes).then(
      () => {
        this.stored.push({ id: pack.id, size: pack.bytes.length, blobs: pack.blobs });
        // Only after a successful save: a failed multipart upload may still be reading it.
        this.buffers.give(pack.buffer);
      },
      (err: unknown) => {
        this.uploadError ??= err;
      },
    );
    const tracked = upload.finally(() => this.uploads.delete(tracked));
    this.uploads.add(tracked);
  }
}
