/**
 * A worker thread of the blob pool (blob-pool.ts): answers its requests (engine-requests.ts) off
 * the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { RECYCLE_IDLE_MS, threadRecycler } from '../buffer-recycler.js';
import { EngineRequests, type PostedRequest } from './engine-requests.js';

const port = parentPort;
if (!port) throw new Error('encode-worker.js runs only as a worker thread');

const requests = new EngineRequests();

// A thread with no work frees its kept buffers too (takes and gives trim only while it works).
setInterval(() => threadRecycler.trim(), RECYCLE_IDLE_MS).unref();

port.on('message', (req: PostedRequest) => {
  const { reply, transfer } = requests.answer(req);
  port.postMessage(reply, transfer);
});
