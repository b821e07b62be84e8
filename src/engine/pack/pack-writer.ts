import { createHash } from 'node:crypto';
import type { EncodedBlob } from './blob-codec.js';
import { encodePackHeader, type PackedBlob } from './pack-format.js';

/** ~16 MiB: few enough objects for cloud listing and per-request costs, small enough to rewrite in prune. */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

export interface FinishedPack {
  id: string;
  bytes: Buffer;
  blobs: PackedBlob[];
}

/** Accumulates sealed blobs in memory until the pack is big enough to store. */
export class PackWriter {
  private parts: Buffer[] = [];
  private blobs: PackedBlob[] = [];
  private offset = 0;

  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.blobs.length;
  }

  add(blob: EncodedBlob): void {
    this.parts.push(blob.sealed);
    this.blobs.push({
      id: blob.id,
      type: blob.type,
      offset: this.offset,
      length: blob.sealed.length,
      uncompressedLength: blob.uncompressedLength,
      compressed: blob.compressed,
    });
    this.offset += blob.sealed.length;
  }

  finish(key: Buffer): FinishedPack {
    this.parts.push(encodePackHeader(key, this.blobs));
    const bytes = Buffer.concat(this.parts);
    const result = { id: createHash('sha256').update(bytes).digest('hex'), bytes, blobs: this.blobs };
    this.parts = [];
    this.blobs = [];
    this.offset = 0;
    return result;
  }
}

export function packPath(packId: string): string {
  return `data/${packId.slice(0, 2)}/${packId}`;
}
