import { createHash } from 'node:crypto';
import type { EncodedBlob } from './blob-codec.js';
import { encodePackHeader, type PackedBlob } from './pack-format.js';

/** ~16 MiB: few enough objects for cloud listing and per-request costs, small enough to rewrite in prune. */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

export interface FinishedPack {
  id: string;
  /** The whole pack; a view of the writer's buffer, valid until it is given back (see PackBuffers). */
  bytes: Buffer;
  blobs: PackedBlob[];
}

/**
 * Pack-sized buffers kept for reuse. Why: a pack's blobs used to be kept as they came (thousands
 * of small buffers per pack) and joined at the end. They lived long enough to reach V8's old
 * generation, where their memory is freed only by a full collection, so a backup's RSS held
 * several packs' worth of dead buffers. Copying each sealed blob into one reused buffer lets the
 * blob die young and keeps pack memory at (packs in flight) × (pack size), whatever the tree.
 */
export class PackBuffers {
  private readonly free: Buffer[] = [];

  /** Keeps up to `keep` buffers of at least `poolBytes`; smaller ones are never pooled. */
  constructor(
    private readonly keep: number,
    private readonly poolBytes = 0,
  ) {}

  take(minBytes: number): Buffer {
    if (minBytes >= this.poolBytes) {
      const i = this.free.findIndex((b) => b.length >= minBytes);
      if (i >= 0) return this.free.splice(i, 1)[0]!;
    }
    return Buffer.allocUnsafeSlow(minBytes);
  }

  give(buf: Buffer): void {
    if (buf.length >= this.poolBytes && this.free.length < this.keep) this.free.push(buf);
  }
}

/** Room a pack buffer keeps beyond the pack size for the header (and a last blob that overflows a little). */
const HEADER_ROOM = 64 * 1024;

/** Accumulates sealed blobs in one buffer until the pack is big enough to store. */
export class PackWriter {
  private buf: Buffer | null = null;
  private blobs: PackedBlob[] = [];
  private offset = 0;

  /**
   * `capacity` is the usual pack size; a pack that outgrows it moves to a bigger buffer. With
   * `startBytes`, a pack starts in a buffer that small and doubles as it fills: tree packs of a
   * backup hold a few KB per directory, and a full pack-sized buffer for them was 16 MiB of
   * resident memory per backup for nothing.
   */
  constructor(
    private readonly capacity: number,
    private readonly buffers: PackBuffers = new PackBuffers(0),
    private readonly startBytes = capacity,
  ) {}

  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.blobs.length;
  }

  add(blob: EncodedBlob): void {
    const sealed = blob.sealed;
    this.reserve(sealed.length);
    sealed.copy(this.buf!, this.offset);
    this.blobs.push({
      id: blob.id,
      type: blob.type,
      offset: this.offset,
      length: sealed.length,
      uncompressedLength: blob.uncompressedLength,
      compressed: blob.compressed,
    });
    this.offset += sealed.length;
  }

  /**
   * Appends the header and hands the pack over with its buffer; the caller gives the buffer back
   * (PackBuffers.give) once the pack is stored. The writer starts a new buffer for the next pack.
   */
  finish(key: Buffer): FinishedPack & { buffer: Buffer } {
    const header = encodePackHeader(key, this.blobs);
    this.reserve(header.length);
    header.copy(this.buf!, this.offset);
    const buffer = this.buf!;
    const bytes = buffer.subarray(0, this.offset + header.length);
    const result = { id: createHash('sha256').update(bytes).digest('hex'), bytes, blobs: this.blobs, buffer };
    this.buf = null;
    this.blobs = [];
    this.offset = 0;
    return result;
  }

  private reserve(bytes: number): void {
    const need = this.offset + bytes;
    if (this.buf && need <= this.buf.length) return;
    const full = this.capacity + HEADER_ROOM;
    const next = this.buffers.take(
      Math.max(need, Math.min(full, this.buf ? this.buf.length * 2 : this.startBytes)),
    );
    if (this.buf) {
      this.buf.copy(next, 0, 0, this.offset);
      this.buffers.give(this.buf);
    }
    this.buf = next;
  }
}

export function packPath(packId: string): string {
  return `data/${packId.slice(0, 2)}/${packId}`;
}
