import type { IndexedPack, MasterIndex } from '../index/master-index.js';
import type { BlobType, EncodedBlob } from '../pack/blob-codec.js';
import { PackWriter } from '../pack/pack-writer.js';
import { type BlobPool, sharedBlobPool } from '../parallel/blob-pool.js';
import { compressionLevel } from './repository-config.js';
import type { RepositoryContext } from './repository-context.js';

/**
 * Full packs being stored (the last writes, fsync and rename; or, on S3, the upload of a pack
 * gathered in memory) while the next pack fills; past this many, new blobs wait for one to end.
 */
const MAX_UPLOADS_IN_FLIGHT = 2;
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
  /** The pack each blob type is filling (opened on its first blob). */
  private readonly filling: Record<BlobType, Promise<PackWriter> | null> = { data: null, tree: null };
  /** The same packs once open, for saves that need not wait (saveEncodedNow). */
  private readonly open: Record<BlobType, PackWriter | null> = { data: null, tree: null };
  /** Packs opened and neither stored nor discarded yet. */
  private readonly unfinished = new Set<PackWriter>();
  private readonly seen = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private uploadError: unknown = null;
  private readonly encoding = new Set<Promise<unknown>>();
  private encodingBytes = 0;
  private readonly encodeSlots: (() => void)[] = [];
  private closed = false;
  /** Packs fully stored, ready to be listed in this run's index file. */
  readonly stored: IndexedPack[] = [];

  constructor(
    private readonly ctx: RepositoryContext,
    private readonly index: MasterIndex,
    private readonly pool: BlobPool = sharedBlobPool(),
  ) {}

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
    if (this.knows(id)) {
      // A chunk read on a pool thread goes back there for reuse, as an encoded one does.
      if (give) this.pool.release(plaintext);
      return { isNew: false, storedBytes: 0, compressed: false };
    }
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

  /**
   * saveEncoded without waiting, when nothing would make it wait: the blob is known already, or
   * it is small and its pack is open, takes it into the buffer of gathered blobs at once and is
   * not full after it, and no upload is holding saves back. Returns null, having done nothing,
   * otherwise. Why: a tree of small files saves one such blob per file, and the promises of the
   * asynchronous path were a large share of the main thread's garbage (18,000 files of about
   * 2 KB in one directory of the small benchmark tree).
   */
  saveEncodedNow(blob: EncodedBlob): SaveOutcome | null {
    if (this.knows(blob.id)) {
      this.pool.release(blob.sealed);
      return { isNew: false, storedBytes: 0, compressed: false };
    }
    const pack = this.open[blob.type];
    const length = blob.sealed.length;
    if (
      !pack ||
      this.closed ||
      this.uploadError ||
      this.uploads.size > MAX_UPLOADS_IN_FLIGHT ||
      !pack.gathersNow(length) ||
      pack.size + length >= this.ctx.config.packSize
    ) {
      return null;
    }
    this.seen.add(blob.id);
    // Gathered: the bytes are copied before add returns, and the promise it returns is settled.
    void pack.add(blob);
    this.pool.release(blob.sealed);
    return { isNew: true, storedBytes: length, compressed: blob.compressed };
  }

  /** Stores the partly filled packs and waits for every upload. */
  async flush(): Promise<void> {
    await this.settleEncoding();
    for (const type of ['data', 'tree'] as const) {
      const opening = this.filling[type];
      if (!opening) continue;
      const pack = await opening;
      if (this.filling[type] === opening) this.finishPack(type, pack);
    }
    await this.drain();
  }

  /**
   * Waits for encodes and uploads already started and discards packs not yet full (used on
   * cancel or failure, so no write is left running behind us and no partial pack is kept).
   */
  async drain(): Promise<void> {
    await this.settleEncoding();
    this.closed = true;
    for (const type of ['data', 'tree'] as const) {
      this.filling[type] = null;
      this.open[type] = null;
    }
    await Promise.allSettled([...this.unfinished].map((pack) => pack.abort()));
    this.unfinished.clear();
    while (this.uploads.size > 0) await Promise.race(this.uploads);
    if (this.uploadError) throw this.uploadError;
  }

  /** Writes the blob into its type's pack (its buffer then goes back to the pool); stores full packs. */
  private async addToPack(blob: EncodedBlob): Promise<SaveOutcome> {
    const outcome = { isNew: true, storedBytes: blob.sealed.length, compressed: blob.compressed };
    for (;;) {
      const opening = this.packFor(blob.type);
      const pack = await opening;
      // Another save may have filled and finished this pack while we waited for it to open.
      if (this.filling[blob.type] !== opening) continue;
      const written = pack.add(blob);
      if (pack.size >= this.ctx.config.packSize) this.finishPack(blob.type, pack);
      await written;
      break;
    }
    this.pool.release(blob.sealed);
    while (this.uploads.size > MAX_UPLOADS_IN_FLIGHT) await Promise.race(this.uploads);
    if (this.uploadError) throw this.uploadError;
    return outcome;
  }

  private packFor(type: BlobType): Promise<PackWriter> {
    if (this.closed) return Promise.reject(new Error('blob saver: save after the backup ended'));
    let opening = this.filling[type];
    if (!opening) {
      const started: Promise<PackWriter> = this.ctx.backend.startUpload().then((upload) => {
        const pack = new PackWriter(upload);
        if (this.closed) {
          void pack.abort();
          throw new Error('blob saver: save after the backup ended');
        }
        this.unfinished.add(pack);
        if (this.filling[type] === started) this.open[type] = pack;
        return pack;
      });
      opening = started;
      this.filling[type] = opening;
    }
    return opening;
  }

  /** The pack takes no more blobs; it is stored under its hash in the background (see uploads). */
  private finishPack(type: BlobType, pack: PackWriter): void {
    this.filling[type] = null;
    if (this.open[type] === pack) this.open[type] = null;
    this.unfinished.delete(pack);
    if (pack.count === 0) {
      void pack.abort();
      return;
    }
    const upload = pack.store(this.ctx.key).then(
      (stored) => {
        this.stored.push(stored);
      },
      (err: unknown) => {
        this.uploadError ??= err;
      },
    );
    const tracked = upload.finally(() => this.uploads.delete(tracked));
    this.uploads.add(tracked);
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
}
