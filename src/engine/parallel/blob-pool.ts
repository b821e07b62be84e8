/**
 * Worker threads for the CPU-heavy half of the data path: zstd compression and AES-GCM sealing
 * of new blobs on backup, opening, decompressing and hash-checking them on restore. Profiling
 * put compression alone at about two thirds of a backup's CPU time on one core; spreading it
 * over the machine's cores is the largest single speed-up the engine has (docs/backup-performance.md).
 *
 * One pool serves the whole process (a server runs several jobs at once): threads start on
 * first use and are unref'd while idle so they never keep a finished command alive.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { CofferError } from '../../errors/coffer-error.js';
import { isErrorCode } from '../../errors/codes.js';
import { type BlobRef, type BlobType, decodeBlob, encodeBlob, type EncodedBlob } from '../pack/blob-codec.js';
import type { PoolReply, PoolRequest } from './pool-messages.js';

/**
 * Blobs smaller than this are encoded on the calling thread: posting them to a worker and back
 * costs about as much as compressing them.
 */
const INLINE_BELOW = 4 * 1024;

type Pending = { resolve: (r: PoolReply & { ok: true }) => void; reject: (e: unknown) => void };

interface PoolThread {
  worker: Worker;
  inFlight: number;
}

/** Threads the pool uses: COFFER_ENGINE_THREADS, else one per core (0 = everything inline). */
export function engineThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.COFFER_ENGINE_THREADS;
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > 256) {
      throw new CofferError('InvalidRequest', 'COFFER_ENGINE_THREADS must be an integer from 0 to 256', {
        field: 'COFFER_ENGINE_THREADS',
        value: raw,
      });
    }
    return n;
  }
  return availableParallelism();
}

export class BlobPool {
  private readonly threads: PoolThread[] = [];
  private readonly pending = new Map<number, Pending & { thread: PoolThread }>();
  private seq = 0;

  constructor(private readonly size: number) {}

  /** Compresses (when worthwhile) and seals a blob; same result as encodeBlob. */
  async encode(
    key: Buffer,
    type: BlobType,
    plaintext: Buffer,
    id: string,
    tryCompress: boolean,
  ): Promise<EncodedBlob> {
    if (this.size === 0 || plaintext.length < INLINE_BELOW)
      return encodeBlob(key, type, plaintext, id, tryCompress);
    // A copy the worker can own: the caller's buffer is often a slice of a larger read buffer.
    const data = copyOut(plaintext);
    const seq = ++this.seq;
    const reply = await this.post({ op: 'encode', seq, key, type, id, tryCompress, data }, data);
    return {
      id,
      type,
      sealed: Buffer.from(reply.data),
      compressed: reply.compressed,
      uncompressedLength: plaintext.length,
    };
  }

  /** Opens, decompresses and verifies a sealed blob; same result and errors as decodeBlob. */
  async decode(key: Buffer, sealed: Buffer, ref: BlobRef, packId: string): Promise<Buffer> {
    if (this.size === 0 || sealed.length < INLINE_BELOW) return decodeBlob(key, sealed, ref, packId);
    const data = copyOut(sealed);
    const seq = ++this.seq;
    const reply = await this.post({ op: 'decode', seq, key, ref, packId, data }, data);
    return Buffer.from(reply.data);
  }

  /** Stops the threads; pending requests fail. Only tests and process shutdown need this. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private post(req: PoolRequest, transfer: ArrayBuffer): Promise<PoolReply & { ok: true }> {
    const thread = this.pick();
    thread.inFlight++;
    if (thread.inFlight === 1) thread.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(req.seq, { resolve, reject, thread });
      thread.worker.postMessage(req, [transfer]);
    });
  }

  /** The least busy thread, starting a new one while fewer than `size` exist. */
  private pick(): PoolThread {
    let best: PoolThread | undefined;
    for (const t of this.threads) if (!best || t.inFlight < best.inFlight) best = t;
    if (best && (best.inFlight === 0 || this.threads.length >= this.size)) return best;
    return this.spawn();
  }

  private spawn(): PoolThread {
    const worker = new Worker(new URL('./encode-worker.js', import.meta.url));
    const thread: PoolThread = { worker, inFlight: 0 };
    worker.unref();
    worker.on('message', (reply: PoolReply) => {
      const p = this.pending.get(reply.seq);
      if (!p) return;
      this.pending.delete(reply.seq);
      thread.inFlight--;
      if (thread.inFlight === 0) worker.unref();
      if (reply.ok) p.resolve(reply);
      else p.reject(rebuildError(reply.error));
    });
    const fail = (err: Error) => {
      // A thread that dies (out of memory, a crash in the native compressor) fails what it held;
      // later requests go to a fresh thread.
      const i = this.threads.indexOf(thread);
      if (i >= 0) this.threads.splice(i, 1);
      for (const [seq, p] of this.pending) {
        if (p.thread !== thread) continue;
        this.pending.delete(seq);
        p.reject(err);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (code !== 0) fail(new Error(`blob pool thread exited with code ${code}`));
      else fail(new Error('blob pool thread stopped'));
    });
    this.threads.push(thread);
    return thread;
  }
}

function copyOut(b: Buffer): ArrayBuffer {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy.buffer;
}

function rebuildError(info: {
  name: string;
  message: string;
  code: string | null;
  context: Record<string, unknown>;
}): Error {
  if (info.name === 'CofferError' && info.code !== null && isErrorCode(info.code)) {
    return new CofferError(info.code, info.message, info.context);
  }
  const err = new Error(info.message);
  err.name = info.name;
  return err;
}

let shared: BlobPool | null = null;

/** The process's pool, sized by engineThreads() on first use. */
export function sharedBlobPool(): BlobPool {
  shared ??= new BlobPool(engineThreads());
  return shared;
}
