import { createHash } from 'node:crypto';
import { CofferError } from '../../errors/coffer-error.js';
import { type NativeFastCdc, nativeFastCdc } from './native-fastcdc.js';

/**
 * FastCDC content-defined chunking (Xia et al., USENIX ATC '16): a gear rolling hash, cut-point
 * skipping below the minimum size, and normalized chunking (a stricter mask before the average
 * size, a looser one after) so chunk sizes cluster around the average.
 *
 * The gear table is derived from a per-repository random seed so that chunk boundaries, which are
 * visible to the storage provider through pack sizes, do not reveal content to someone who knows
 * the default table.
 */
export interface ChunkerParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
}

export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = {
  minSize: 512 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
};

/** Normalization level 2 from the paper: ±2 mask bits around log2(avgSize). */
const NORMALIZATION = 2;

export function validateChunkerParams(p: ChunkerParams): void {
  const ok =
    Number.isInteger(p.minSize) &&
    Number.isInteger(p.avgSize) &&
    Number.isInteger(p.maxSize) &&
    p.minSize >= 64 &&
    p.minSize < p.avgSize &&
    p.avgSize < p.maxSize &&
    p.maxSize <= 64 * 1024 * 1024;
  if (!ok) {
    throw new CofferError('InvalidRequest', 'chunker sizes must satisfy 64 <= min < avg < max <= 64 MiB', {
      chunker: p,
    });
  }
}

export function gearTableFromSeed(seed: Uint8Array): Int32Array {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    const digest = createHash('sha256').update(seed).update(Uint8Array.of(i)).digest();
    table[i] = digest.readInt32LE(0);
  }
  return table;
}

/** A mask over the *high* bits: with `h << 1` those depend on the last 32 bytes, the low bits on fewer. */
function highMask(bits: number): number {
  return bits >= 32 ? -1 : (-1 << (32 - bits)) | 0;
}

/**
 * Finds cut points in a byte stream fed piecewise; holds only the rolling-hash state between
 * calls, so it never buffers or allocates.
 */
export class CutPointFinder {
  private readonly gear: Int32Array;
  private readonly minSize: number;
  private readonly avgSize: number;
  private readonly maxSize: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private hash = 0;
  private chunkLen = 0;
  /** The addon's loop, or null for the JavaScript one (see roll). */
  private readonly native: NativeFastCdc | null;
  /** The hash, passed to and from the addon. */
  private readonly state = new Int32Array(1);

  constructor(gear: Int32Array, params: ChunkerParams, useNative = true) {
    validateChunkerParams(params);
    this.gear = gear;
    this.minSize = params.minSize;
    this.avgSize = params.avgSize;
    this.maxSize = params.maxSize;
    const bits = Math.round(Math.log2(params.avgSize));
    this.maskS = highMask(bits + NORMALIZATION);
    this.maskL = highMask(bits - NORMALIZATION);
    this.native = useNative ? nativeFastCdc() : null;
  }

  /** Bytes of the chunk in progress. */
  get pending(): number {
    return this.chunkLen;
  }

  /**
   * Scans `buf` from `start`. Returns the index just past a cut point (the chunk ends there and the
   * state resets), or -1 when the whole rest of `buf` belongs to the chunk in progress.
   */
  findCut(buf: Uint8Array, start: number): number {
    const end = buf.length;
    let i = start;
    let len = this.chunkLen;

    // Cut-point skipping: a chunk is never shorter than minSize, so those bytes need no hashing.
    if (len < this.minSize) {
      const skip = Math.min(this.minSize - len, end - i);
      i += skip;
      len += skip;
      if (len < this.minSize) {
        this.chunkLen = len;
        return -1;
      }
    }

    if (len < this.avgSize) {
      const stop = Math.min(end, i + (this.avgSize - len));
      const at = this.roll(buf, i, stop, this.maskS);
      if (at >= 0) return this.cut(at);
      len += stop - i;
      i = stop;
      if (i === end && len < this.avgSize) {
        this.chunkLen = len;
        return -1;
      }
    }

    const stop = Math.min(end, i + (this.maxSize - len));
    const at = this.roll(buf, i, stop, this.maskL);
    if (at >= 0) return this.cut(at);
    len += stop - i;
    if (len >= this.maxSize) return this.cut(stop);
    this.chunkLen = len;
    return -1;
  }

  /**
   * Rolls the hash over `buf[from..stop)`: the index just past the first byte where
   * `(hash & mask) === 0`, or -1 with the hash kept for the next call. In C when the addon is
   * built (native/fastcdc), else here; both give the same cut points.
   */
  private roll(buf: Uint8Array, from: number, stop: number, mask: number): number {
    if (this.native) {
      this.state[0] = this.hash;
      const at = this.native.scan(buf, from, stop, mask, this.gear, this.state);
      this.hash = this.state[0]!;
      return at;
    }
    const gear = this.gear;
    let h = this.hash;
    for (let i = from; i < stop; i++) {
      h = ((h << 1) + gear[buf[i]!]!) | 0;
      if ((h & mask) === 0) {
        this.hash = h;
        return i + 1;
      }
    }
    this.hash = h;
    return -1;
  }

  private cut(at: number): number {
    this.hash = 0;
    this.chunkLen = 0;
    return at;
  }

  reset(): void {
    this.hash = 0;
    this.chunkLen = 0;
  }
}

/**
 * Turns buffers fed in order into content-defined chunks. It keeps references to the pushed
 * buffers (no copy unless a chunk spans several), so callers must not reuse a buffer after pushing it.
 */
export class StreamingChunker {
  private readonly finder: CutPointFinder;
  private pieces: Buffer[] = [];

  constructor(gear: Int32Array, params: ChunkerParams) {
    this.finder = new CutPointFinder(gear, params);
  }

  /** Returns the chunks completed by `buf` (possibly none). */
  push(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const cut = this.finder.findCut(buf, pos);
      if (cut < 0) {
        this.pieces.push(buf.subarray(pos));
        break;
      }
      this.pieces.push(buf.subarray(pos, cut));
      out.push(this.takePieces());
      pos = cut;
    }
    return out;
  }

  /** Ends the stream: returns the final, possibly short, chunk or null when nothing is left. */
  finish(): Buffer | null {
    this.finder.reset();
    if (this.pieces.length === 0) return null;
    return this.takePieces();
  }

  private takePieces(): Buffer {
    const pieces = this.pieces;
    this.pieces = [];
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  }
}
