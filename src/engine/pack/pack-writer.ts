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

/**
 * Sealed blobs below this size are gathered and written to storage together (see PackWriter.add).
 * Why: a small-file tree stores one small blob per file, and one write per blob (30,000 on the
 * small benchmark tree) cost the main thread about a second of a 4 s backup in write calls and
 * their promises (profiled); gathered, that is one write per STAGE_BYTES.
 */
export const GATHER_BELOW = 64 * 1024;
/** Size of the buffer small blobs are gathered in before they are written. */
const STAGE_BYTES = 1024 * 1024;

export class PackWriter {
  private readonly hash: Hash = createHash('sha256');
  private readonly blobs: PackedBlob[] = [];
  private offset = 0;
  private readonly writes = new Set<Promise<void>>();
  /** Small blobs gathered and not written yet: the pack's bytes from stageAt on. */
  private stage: Buffer | null = null;
  private stageAt = 0;
  private stageLength = 0;
  /** A stage buffer whose write has finished, for the next stage. */
  private spare: Buffer | null = null;
  /** The write of the last stage, while it runs (see gather). */
  private stageWrite: Promise<void> | null = null;

  constructor(private readonly upload: ObjectUpload) {}

  /** Bytes added so far. */
  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.blobs.length;
  }

  /**
   * Adds a blob at the end of the pack; once the promise resolves, the blob's buffer may be
   * reused. The place is taken at once, so adds may overlap. A small blob is copied into a
   * buffer written with its neighbours (the promise then waits only when an earlier full stage
   * is still being written); a large one is written from its own buffer. A write that fails
   * fails this promise or, for gathered blobs, store().
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
    if (sealed.length < GATHER_BELOW) return this.gather(sealed, at);
    // The gathered bytes lie before this blob: they go out first, so the stage stays contiguous.
    this.flushStage();
    return this.write(sealed, at);
  }

  /**
   * Whether a blob of `length` sealed bytes would be gathered without waiting (see gather): it is
   * small, and either fits the stage or no earlier stage is still being written.
   */
  gathersNow(length: number): boolean {
    if (length >= GATHER_BELOW) return false;
    return !this.stage || this.stageLength + length <= this.stage.length || this.stageWrite === null;
  }

  /**
   * Copies a small blob to the end of the stage, synchronously, so the stage always holds the
   * pack's bytes from stageAt on without a gap. A full stage is written and a fresh one started;
   * when the stage written before it is still being written, the caller waits for that one,
   * which bounds the stages in memory.
   */
  private gather(sealed: Buffer, at: number): Promise<void> {
    let wait: Promise<void> | null = null;
    if (this.stage && this.stageLength + sealed.length > this.stage.length) {
      wait = this.stageWrite;
      this.flushStage();
    }
    if (!this.stage) {
      this.stage = this.spare ?? Buffer.allocUnsafeSlow(STAGE_BYTES);
      this.spare = null;
      this.stageAt = at;
      this.stageLength = 0;
    }
    sealed.copy(this.stage, this.stageLength);
    this.stageLength += sealed.length;
    return wait ?? Promise.resolve();
  }

  /** Starts the write of the gathered blobs, if any. */
  private flushStage(): void {
    const stage = this.stage;
    if (!stage) return;
    this.stage = null;
    if (this.stageLength === 0) {
      this.spare = stage;
      return;
    }
    const writing = this.write(stage.subarray(0, this.stageLength), this.stageAt);
    const done: Promise<void> = writing.then(
      () => {
        if (this.stageWrite === done) this.stageWrite = null;
        this.spare = stage;
      },
      () => {
        if (this.stageWrite === done) this.stageWrite = null;
      },
    );
    this.stageWrite = done;
  }

  private write(data: Buffer, at: number): Promise<void> {
    const writing = this.upload.write(data, at);
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
      this.flushStage();
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
