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
const ENTRY_SIZE = 46;
export const PACK_TRAILER_SIZE = 4;

export function encodePackHeader(key: Buffer, blobs: readonly PackedBlob[]): Buffer {
  const plain = Buffer.alloc(1 + blobs.length * ENTRY_SIZE);
  plain[0] = HEADER_VERSION;
  let o = 1;
  for (const b of blobs) {
    plain[o] = b.type === 'tree' ? 1 : 0;
    plain[o + 1] = b.compressed ? 1 : 0;
    plain.writeUInt32LE(b.offset, o + 2);
    plain.writeUInt32LE(b.length, o + 6);
    plain.writeUInt32LE(b.uncompressedLength, o + 10);
    plain.write(b.id, o + 14, 32, 'hex');
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
  for (let o = 1; o < plain.length; o += ENTRY_SIZE) {
    blobs.push({
      type: plain[o] === 1 ? 'tree' : 'data',
      compressed: (plain[o + 1]! & 1) === 1,
      offset: plain.readUInt32LE(o + 2),
      length: plain.readUInt32LE(o + 6),
      uncompressedLength: plain.readUInt32LE(o + 10),
      id: plain.toString('hex', o + 14, o + 46),
    });
  }
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
