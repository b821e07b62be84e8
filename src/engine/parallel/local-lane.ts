/**
 * The main thread's own lane of the blob pool: it answers pool requests the way a worker thread
 * does (engine-requests.ts), one request per turn of the event loop, so that the main thread's
 * own work (the walk, deduplication, writing packs) and the worker threads' replies are served
 * between them. Why: the main thread of a backup is busy for a fifth of it at most, and a worker
 * thread costs a V8 heap, its malloc arenas and its free buffers (25–30 MB of a first backup's
 * peak) and every request to it a message each way. With a lane, a 2-core machine runs one
 * worker thread, and the main thread takes the share of a second (docs/backup-performance.md).
 *
 * It looks like a Worker to the pool; nothing is transferred (the buffers stay on this thread).
 */
import { EventEmitter } from 'node:events';
import { EngineRequests, type PostedRequest } from './engine-requests.js';

export class LocalLane extends EventEmitter {
  private readonly requests = new EngineRequests();
  private readonly queue: PostedRequest[] = [];
  private scheduled = false;
  private stopped = false;

  constructor() {
    super();
    setImmediate(() => this.emit('online'));
  }

  /** `transfer` is for a worker's sake: here the buffers stay where they are. */
  postMessage(req: PostedRequest, transfer?: ArrayBuffer[]): void {
    void transfer;
    if (this.stopped) return;
    this.queue.push(req);
    this.schedule();
  }

  /** A lane never holds the process open by itself: its queued turns do while they wait. */
  ref(): void {}
  unref(): void {}

  terminate(): Promise<number> {
    this.stopped = true;
    this.queue.length = 0;
    setImmediate(() => this.emit('exit', 0));
    return Promise.resolve(0);
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(this.turn);
  }

  private readonly turn = (): void => {
    this.scheduled = false;
    const req = this.queue.shift();
    if (!req || this.stopped) return;
    this.emit('message', this.requests.answer(req).reply);
    this.schedule();
  };
}
