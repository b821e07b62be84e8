/** Messages between the blob pool (blob-pool.ts) and its worker threads (encode-worker.ts). */
import type { BlobRef, BlobType } from '../pack/blob-codec.js';

export type PoolRequest =
  | {
      op: 'encode';
      seq: number;
      key: Uint8Array;
      type: BlobType;
      id: string;
      tryCompress: boolean;
      /** The plaintext, transferred. */
      data: ArrayBuffer;
    }
  | {
      op: 'decode';
      seq: number;
      key: Uint8Array;
      ref: BlobRef;
      packId: string;
      /** The sealed blob, transferred. */
      data: ArrayBuffer;
    };

export interface PoolErrorInfo {
  name: string;
  message: string;
  /** The catalog code when the worker threw a CofferError (e.g. RepositoryCorrupt). */
  code: string | null;
  context: Record<string, unknown>;
}

export type PoolReply =
  | { seq: number; ok: true; data: ArrayBuffer; compressed: boolean }
  | { seq: number; ok: false; error: PoolErrorInfo };
