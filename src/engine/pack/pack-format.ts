import { CofferError } from '../../errors/coffer-error.js';
import { open, seal } from '../crypto/aead.js';
import type { BlobType } from './blob-codec.js';

/**
 * Pack layout: blob_1 || … || blob_n || sealed(header) || uint32le(len(sealed(header))).
 * Each blob is sealed on its own so restore can fetch and authenticate one blob by range.
 * Header plaintext: version byte 1, then per blob 46 bytes:
 *   type u8 (0 data, 1 tree) | flags u8 (bit 0 compressed) | offset u32le | length u32le |
 *   uncompressed length u32le | id (32 bytes, SHA-256 of the plaintext).
 * The pack's name is the SHA-256 of all its bytes, so a pack can be verified without the key.
 */
export interface PackedBlob {
  id: string;
  type: BlobType;
  offset: number;
  length: number;
  uncompressedLength: number;
  compressed: boolean;
}

const HEADER_VERSION = 1;
/** Bytes of one blob's entry in a pack header (and in a binary index file: master-index.ts). */
export const BLOB_ENTRY_SIZE = 46;
/** Where the blob id starts in an entry. */
export const BLOB_ENTRY_ID_AT = 14;
const ENTRY_SIZE = BLOB_ENTRY_SIZE;
export const PACK_TRAILER_SIZE = 4;

/** Writes `b` as the entry layout above at `o`. */
export function writeBlobEntry(out: Buffer, o: number, b: PackedBlob): void {
  out[o] = b.type === 'tree' ? 1 : 0;
  out[o + 1] = b.compressed ? 1 : 0;
  out.writeUInt32LE(b.offset, o + 2);
  out.writeUInt32LE(b.length, o + 6);
  out.writeUInt32LE(b.uncompressedLength, o + 10);
  if (b.id.length !== 64 || out.write(b.id, o + BLOB_ENTRY_ID_AT, 32, 'hex') !== 32) {
    throw new Error(`blob id ${b.id} is not 64 hex digits`);
  }
}

/** The entry at `o` (written by writeBlobEntry). */
export function readBlobEntry(plain: Buffer, o: number): PackedBlob {
  return {
    type: plain[o] === 1 ? 'tree' : 'data',
    compressed: (plain[o + 1]! & 1) === 1,
    offset: plain.readUInt32LE(o + 2),
    length: plain.readUInt32LE(o + 6),
    uncompressedLength: plain.readUInt32LE(o + 10),
    id: plain.toString('hex', o + BLOB_ENTRY_ID_AT, o + BLOB_ENTRY_ID_AT + 32),
  };
}

export function encodePackHeader(key: Buffer, blobs: readonly PackedBlob[]): Buffer {
  const plain = Buffer.alloc(1 + blobs.length * ENTRY_SIZE);
  plain[0] = HEADER_VERSION;
  let o = 1;
  for (const b of blobs) {
    writeBlobEntry(plain, o, b);
    o += ENTRY_SIZE;
  }
  const sealed = seal(key, plain);
  const trailer = Buffer.alloc(PACK_TRAILER_SIZE);
  trailer.writeUInt32LE(sealed.length, 0);
  return Buffer.concat([sealed, trailer]);
}

export function readHeaderLength(trailer: Uint8Array, packId: string, packSize: number): number {
  const len = Buffer.from(trailer.buffer, trailer.byteOffset, trailer.byteLength).readUInt32LE(0);
  if (len + PACK_TRAILER_SIZE > packSize) {
    throw new CofferError('RepositoryCorrupt', `pack ${packId} has an impossible header length`, { packId });
  }
  return len;
}

export function decodePackHeader(key: Buffer, sealedHeader: Uint8Array, packId: string): PackedBlob[] {
  const plain = open(key, sealedHeader);
  if (!plain || plain[0] !== HEADER_VERSION || (plain.length - 1) % ENTRY_SIZE !== 0) {
    throw new CofferError('RepositoryCorrupt', `pack ${packId} has a damaged header`, { packId });
  }
  const blobs: PackedBlob[] = [];
  for (let o = 1; o < plain.length; o += ENTRY_SIZE) blobs.push(readBlobEntry(plain, o));
  return blobs;
}

/** Parses a whole pack's header (used by check --read-data, which has the bytes anyway). */
export function packHeaderFromBytes(key: Buffer, pack: Buffer, packId: string): PackedBlob[] {
  if (pack.length < PACK_TRAILER_SIZE) {
    throw new CofferError('RepositoryCorrupt', `pack ${packId} is truncated`, { packId });
  }
  const len = readHeaderLength(pack.subarray(pack.length - PACK_TRAILER_SIZE), packId, pack.length);
  const start = pack.length - PACK_TRAILER_SIZE - len;
  return decodePackHeader(key, pack.subarray(start, pack.length - PACK_TRAILER_SIZE), packId);
}
