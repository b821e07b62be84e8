/** Messages between the blob pool (blob-pool.ts) and its worker threads (encode-worker.ts). */
import type { ChunkerParams } from '../chunker/fastcdc.js';
import type { BlobRef, BlobType, DamagedBlob, LocatedBlob } from '../pack/blob-codec.js';
import type { DiffRequest, DirDiff, SealedTree } from './dir-diff.js';
import type { TreeNode } from '../tree/tree.js';
import type { ScannedDir, SmallFileRead, TreeCount } from './file-work.js';
import type { EntryOutcome, EntryWork, RestoredMetadata, RestoreWriteOutcome } from './restore-work.js';

/** A ReadContext as posted: sent to a thread once, then named by its number. */
export interface ReadContextWire {
  key: Uint8Array;
  /** Backed by a SharedArrayBuffer, so posting it shares instead of copying. */
  gear: Int32Array;
  chunker: ChunkerParams;
  compressionLevel: number;
  known: SharedArrayBuffer;
}

/**
 * Every request may carry `dispose`: buffers the thread sent earlier and the main thread no longer
 * needs (BlobPool.release); the thread keeps them for reuse (buffer-recycler.ts).
 */
export type PoolRequest =
  | {
      op: 'encode';
      seq: number;
      key: Uint8Array;
      type: BlobType;
      id: string;
      /** zstd level, 0 for none. */
      level: number;
      /** The plaintext: the first `length` bytes of `data`, transferred. */
      data: ArrayBuffer;
      length: number;
      /**
       * The plaintext's buffer was made by another thread: send it back with the reply (as
       * `plain`) for the pool to return it there, instead of keeping it (buffer-recycler.ts).
       */
      sendBack: boolean;
    }
  /** Lists a directory, and its subdirectories up to about `ahead` entries (scanDirectories). */
  | { op: 'scan'; seq: number; path: string; ahead: number }
  /** Lists subdirectories of a directory, in order, up to about `ahead` entries (scanSubdirs). */
  | { op: 'scan-subdirs'; seq: number; path: string; names: string[]; ahead: number }
  /** Counts files and bytes under a directory, up to about `ahead` entries (file-work.ts countTree). */
  | { op: 'count'; seq: number; path: string; ahead: number }
  /** Lists directories and compares each with its parent tree (dir-diff.ts diffDirectory). */
  | {
      op: 'diff';
      seq: number;
      dirs: DiffRequest[];
      context: number;
      /** Present the first time this thread sees the context. */
      contextData?: ReadContextWire;
    }
  /** A changed directory's tree, from its parent tree and what changed (dir-diff.ts buildTree). */
  | {
      op: 'build-tree';
      seq: number;
      tree: SealedTree;
      nodes: TreeNode[];
      drop: string[];
      context: number;
      /** Present the first time this thread sees the context. */
      contextData?: ReadContextWire;
    }
  /** Small files read whole, one after the other (file-work.ts readSmallFiles). */
  | {
      op: 'read-small';
      seq: number;
      files: SmallFileRead[];
      context: number;
      /** Present the first time this thread sees the context. */
      contextData?: ReadContextWire;
    }
  /** Opens a file and reads its first part; the session stays open on the thread until end of file. */
  | {
      op: 'file-open';
      seq: number;
      session: number;
      path: string;
      expectedSize: number;
      maxBytes: number;
      context: number;
      /** Present the first time this thread sees the context. */
      contextData?: ReadContextWire;
    }
  | {
      op: 'restore-writes';
      seq: number;
      key: Uint8Array;
      /** Done one after the other, in this order. */
      writes: RestoreWriteWire[];
      /** The sealed blobs not in shared memory, back to back (transferred); null when there are none. */
      data: ArrayBuffer | null;
    }
  | { op: 'restore-entries'; seq: number; batch: EntryWork[] }
  | {
      op: 'verify-pack';
      seq: number;
      key: Uint8Array;
      packId: string;
      /** The whole pack, transferred. */
      data: ArrayBuffer;
      blobs: LocatedBlob[];
    }
  /** The backup that used the context is over: the thread drops it. */
  | { op: 'context-release'; seq: number; context: number }
  | { op: 'file-next'; seq: number; session: number; maxBytes: number }
  | { op: 'file-close'; seq: number; session: number };

export interface PoolErrorInfo {
  name: string;
  message: string;
  /** The catalog code when the worker threw a CofferError (e.g. RepositoryCorrupt). */
  code: string | null;
  context: Record<string, unknown>;
}

/** A PartChunk with its bytes as transferable ArrayBuffers. */
export type PartChunkWire = { id: string; offset: number; length: number } & (
  | { kind: 'known' }
  | { kind: 'plain'; data: ArrayBuffer }
  | { kind: 'sealed'; sealed: ArrayBuffer; sealedLength: number; compressed: boolean }
);

export type FilePartWire =
  | { status: 'part'; chunks: PartChunkWire[]; bytesRead: number; eof: boolean }
  | { status: 'error'; stage: 'open' | 'read'; errno: string; position: number };

/**
 * A RestoreWrite as posted: its sealed blob is the `length` bytes at `start` of `shared` (memory
 * both threads see, read where it lies) or, without it, of the request's data.
 */
export interface RestoreWriteWire {
  path: string;
  create: boolean;
  blob: {
    ref: BlobRef;
    packId: string;
    offset: number;
    start: number;
    length: number;
    shared?: SharedArrayBuffer;
  } | null;
  finish: RestoredMetadata | null;
}

/** A small-file batch's outcome for one file (SmallFileOutcome) with transferable buffers. */
export type SmallFileWire = FilePartWire | { status: 'grew' };

export type PoolResult =
  /** The sealed blob: the first `length` bytes of `data`. */
  | { kind: 'blob'; data: ArrayBuffer; length: number; compressed: boolean; plain: ArrayBuffer | null }
  | { kind: 'scan'; dir: ScannedDir }
  | { kind: 'count'; count: TreeCount }
  /** In the order of the request's `dirs`. */
  | { kind: 'diffs'; diffs: DirDiff[] }
  /** The sealed tree blob: the first `length` bytes of `data`. */
  | {
      kind: 'tree';
      id: string;
      data: ArrayBuffer;
      length: number;
      compressed: boolean;
      uncompressedLength: number;
    }
  | { kind: 'part'; part: FilePartWire }
  | { kind: 'small-files'; outcomes: SmallFileWire[] }
  | { kind: 'closed' }
  /** `data`: the request's buffer of sealed blobs, back for the main thread to reuse. */
  | { kind: 'restored'; outcomes: RestoreWriteOutcome[]; data: ArrayBuffer | null }
  | { kind: 'entries'; outcomes: EntryOutcome[] }
  | { kind: 'verified'; damaged: DamagedBlob[] }
  | { kind: 'released' };

export type PoolReply =
  { seq: number; ok: true; result: PoolResult } | { seq: number; ok: false; error: PoolErrorInfo };
