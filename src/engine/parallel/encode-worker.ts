/**
 * A worker thread of the blob pool (blob-pool.ts): compresses and seals blobs, and opens and
 * verifies them for restore, off the main thread. It holds no state between requests.
 */
import { parentPort } from 'node:worker_threads';
import { decodeBlob, encodeBlob } from '../pack/blob-codec.js';
import type { PoolErrorInfo, PoolReply, PoolRequest } from './pool-messages.js';

const port = parentPort;
if (!port) throw new Error('encode-worker.js runs only as a worker thread');

port.on('message', (req: PoolRequest) => {
  const key = Buffer.from(req.key);
  let reply: PoolReply;
  try {
    if (req.op === 'encode') {
      const blob = encodeBlob(key, req.type, Buffer.from(req.data), req.id, req.tryCompress);
      const sealed = ownBuffer(blob.sealed);
      reply = { seq: req.seq, ok: true, data: sealed, compressed: blob.compressed };
    } else {
      const plain = decodeBlob(key, Buffer.from(req.data), req.ref, req.packId);
      reply = { seq: req.seq, ok: true, data: ownBuffer(plain), compressed: req.ref.compressed };
    }
  } catch (err) {
    reply = { seq: req.seq, ok: false, error: serializeError(err) };
  }
  port.postMessage(reply, reply.ok ? [reply.data] : []);
});

/** An ArrayBuffer holding exactly these bytes, safe to transfer (not part of Node's shared slab). */
function ownBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) {
    return b.buffer;
  }
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy.buffer;
}

function serializeError(err: unknown): PoolErrorInfo {
  const e = err as { name?: unknown; message?: unknown; code?: unknown; context?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    code: typeof e?.code === 'string' ? e.code : null,
    context: e?.context && typeof e.context === 'object' ? (e.context as Record<string, unknown>) : {},
  };
}
