import { createHash } from 'node:crypto';
import zstd from 'zstd-napi';
import zbind from 'zstd-napi/binding.js';
import { CofferError } from '../../errors/coffer-error.js';
import { open, openInto, SEAL_OVERHEAD, seal } from '../crypto/aead.js';

export type BlobType = 'data' | 'tree';

/** Compressed output is kept only when it saves at least 3 %: below that, decompression costs more than the space. */
const KEEP_RATIO = 0.97;

export interface EncodedBlob {
  id: string;
  type: BlobType;
  sealed: Buffer;
  compressed: boolean;
  uncompressedLength: number;
}

export function blobId(plaintext: Uint8Array): string {
  return createHash('sha256').update(plaintext).digest('hex');
}

/**
 * Compresses (at zstd `level`, or not at all for 0) when that saves enough, then seals. The
 * level is the vault's setting (repository-config.ts); a caller passes 0 for data already known
 * to be incompressible.
 */
export function encodeBlob(
  key: Buffer,
  type: BlobType,
  plaintext: Buffer,
  id: string,
  level: number,
): EncodedBlob {
  let body: Buffer = plaintext;
  let compressed = false;
  if (level > 0 && plaintext.length > 64) {
    const packed = compressToScratch(plaintext, level);
    if (packed.length < plaintext.length * KEEP_RATIO) {
      body = packed;
      compressed = true;
    }
  }
  return { id, type, sealed: seal(key, body), compressed, uncompressedLength: plaintext.length };
}

export interface BlobRef {
  id: string;
  compressed: boolean;
  uncompressedLength: number;
}

/** A blob and where it lies in its pack's bytes. */
export type LocatedBlob = BlobRef & { offset: number; length: number };

/**
 * Decrypts, decompresses and verifies that the plaintext hashes to the blob's id. With
 * `transient`, a compressed blob is decompressed into this thread's reused buffer and the result
 * is a view, valid only until the next transient decode on the thread: for callers that write or
 * verify the plaintext at once (restore, check, prune); the ciphertext is decrypted into a reused
 * buffer too. Why: a restore decompressed every byte of the tree into a fresh buffer, and the
 * page faults of those short-lived buffers were a large share of its system time.
 */
export function decodeBlob(
  key: Buffer,
  sealed: Uint8Array,
  ref: BlobRef,
  packId: string,
  transient = false,
): Buffer {
  const body = transient ? openToScratch(key, sealed, ref.compressed) : open(key, sealed);
  if (!body) {
    throw new CofferError('RepositoryCorrupt', `blob ${ref.id} in pack ${packId} fails authentication`, {
      blobId: ref.id,
      packId,
    });
  }
  let plaintext = body;
  if (ref.compressed) {
    try {
      plaintext = transient ? decompressToScratch(body, ref.uncompressedLength) : zstd.decompress(body);
    } catch (err) {
      throw new CofferError(
        'RepositoryCorrupt',
        `blob ${ref.id} in pack ${packId} does not decompress`,
        { blobId: ref.id, packId },
        { cause: err },
      );
    }
  }
  if (plaintext.length !== ref.uncompressedLength || blobId(plaintext) !== ref.id) {
    throw new CofferError(
      'RepositoryCorrupt',
      `blob ${ref.id} in pack ${packId} has the wrong content hash`,
      {
        blobId: ref.id,
        packId,
      },
    );
  }
  return plaintext;
}

let dctx: InstanceType<typeof zbind.DCtx> | null = null;
let plainScratch: Buffer | null = null;
let openedScratch: Buffer | null = null;

/**
 * A reused buffer of this thread, at least `length` bytes: 1 MiB at first, grown to the next
 * power of two, never shrunk. Why powers of two: grown to each new largest length, a restore's
 * buffers were replaced again and again as chunks of 1, 1.3, 1.7 … MiB came by, and every new
 * buffer's pages were faulted in afresh (a fifth of a large restore's page faults).
 */
function scratchOf(current: Buffer | null, length: number): Buffer {
  if (current && current.length >= length) return current;
  let size = 1 << 20;
  while (size < length) size *= 2;
  return Buffer.allocUnsafeSlow(size);
}

/**
 * Decrypts into a reused buffer (see decodeBlob): a compressed body into the one decompression
 * reads from, an uncompressed one straight into the plaintext buffer, so either way the result
 * lives until the next transient decode, and the two never overlap.
 */
function openToScratch(key: Buffer, sealed: Uint8Array, compressed: boolean): Buffer | null {
  const length = Math.max(0, sealed.length - SEAL_OVERHEAD);
  if (compressed) return openInto(key, sealed, (openedScratch = scratchOf(openedScratch, length)));
  return openInto(key, sealed, (plainScratch = scratchOf(plainScratch, length)));
}

/** zstd into this thread's reused buffer, sized by the index's uncompressed length (see decodeBlob). */
function decompressToScratch(src: Buffer, expectedLength: number): Buffer {
  dctx ??= new zbind.DCtx();
  plainScratch = scratchOf(plainScratch, expectedLength);
  // A frame longer than the index says fails here (the buffer is too small), like a bad one.
  const n = dctx.decompress(plainScratch.subarray(0, expectedLength), src);
  return plainScratch.subarray(0, n);
}

/**
 * This thread's compression contexts, one per size tier of zstd's parameter tables (inputs up to
 * 16 KiB, 128 KiB, 256 KiB, and larger), and its output buffer, reused by every blob it
 * compresses. Why one context per tier: zstd sizes a context's tables by the input, and frees
 * and reallocates them when a run of smaller inputs finds them oversized; a thread that
 * compressed small files and large chunks in turn mapped fresh tables again and again (a
 * sixth of the page faults of a first backup of 30,000 small files).
 */
interface Compressor {
  cctx: InstanceType<typeof zbind.CCtx>;
  level: number;
}
const compressors: (Compressor | undefined)[] = [];
const CCTX_TIERS = [16 * 1024, 128 * 1024, 256 * 1024];

/**
 * zstd's `ZSTD_c_blockSplitterLevel` (zstd.h, an experimental parameter that zstd-napi's enum
 * leaves out), and its value for "never split a block before compressing it". Why: since zstd
 * 1.5.7, levels 3 and up look for a place to split each 128 KiB block in two: over every byte
 * of the large benchmark tree in 1 MiB blocks that cost 4-8 % of level 3's time for 0.5 % less
 * output (docs/benchmarks.md). The frames are ordinary zstd frames either way.
 */
const BLOCK_SPLITTER_LEVEL = 1017 as zbind.CParameter;
const NO_BLOCK_SPLITTING = 1;

/**
 * The short-match hash table (`ZSTD_c_chainLog`, which level 3's double-fast strategy uses as a
 * second hash table) for inputs above the last tier at level 3: 2^15 entries instead of level
 * 3's 2^16. Why: over every chunk-sized block of the large benchmark tree (1.6 GB in 1 MiB
 * blocks, one core, alternated three times) it compressed 6-7 % faster for 0.35 % more output
 * (609.9 against 607.8 MB), presumably as the smaller table stays in cache; halving the long
 * table too (hashLog 16) or the short one again (14) cost 0.7 % more output. Smaller inputs keep
 * zstd's own tables, which it already sizes down to the input. 0 means zstd's default.
 */
function chainLogFor(tier: number, level: number): number {
  return tier === CCTX_TIERS.length && level === 3 ? 15 : 0;
}

function compressorFor(length: number, level: number): Compressor {
  let tier = CCTX_TIERS.findIndex((max) => length <= max);
  if (tier < 0) tier = CCTX_TIERS.length;
  let c = compressors[tier];
  if (!c) {
    c = compressors[tier] = { cctx: new zbind.CCtx(), level: -1 };
    try {
      c.cctx.setParameter(BLOCK_SPLITTER_LEVEL, NO_BLOCK_SPLITTING);
    } catch {
      // A libzstd that does not know the parameter compresses as it always did.
    }
  }
  if (c.level !== level) {
    c.cctx.setParameter(zbind.CParameter.compressionLevel, level);
    // An explicit table size outlives a change of level: set (or cleared) with every level.
    c.cctx.setParameter(zbind.CParameter.chainLog, chainLogFor(tier, level));
    c.level = level;
  }
  return c;
}
let scratch: Buffer | null = null;

/**
 * zstd into a reused buffer; the result is a view, valid until the next call on this thread
 * (encodeBlob seals it at once). Why: zstd-napi's one-shot `compress` allocates a worst-case
 * output buffer and then a copy of the result for every call, two buffers per chunk that only
 * lived until the blob was sealed.
 */
export function compressToScratch(src: Uint8Array, level: number): Buffer {
  const { cctx } = compressorFor(src.length, level);
  scratch = scratchOf(scratch, zbind.compressBound(src.length));
  // compress2 keeps the context's parameters (compressCCtx would reset the splitter setting).
  const n = cctx.compress2(scratch, src);
  return scratch.subarray(0, n);
}

/** A blob of a pack that failed to verify: what check reports for it. */
export interface DamagedBlob {
  id: string;
  message: string;
}

/**
 * Opens and hash-checks every listed blob of a pack's bytes, where the index (not the possibly
 * damaged header) says each one is, so every damaged blob is named. For `check --read-data`,
 * which runs it on an engine thread per pack (BlobPool.verifyPack).
 */
export function verifyPackBlobs(
  key: Buffer,
  bytes: Uint8Array,
  blobs: readonly LocatedBlob[],
  packId: string,
): DamagedBlob[] {
  const damaged: DamagedBlob[] = [];
  for (const b of blobs) {
    try {
      if (b.offset + b.length > bytes.length)
        throw new Error(`blob ${b.id} lies beyond the end of pack ${packId}`);
      decodeBlob(key, bytes.subarray(b.offset, b.offset + b.length), b, packId, true);
    } catch (err) {
      damaged.push({ id: b.id, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return damaged;
}
