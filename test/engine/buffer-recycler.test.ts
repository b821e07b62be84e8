import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  adoptPooled,
  BufferRecycler,
  capacity,
  isRecycledSize,
  RECYCLE_MIN,
  threadRecycler,
  wholeBuffer,
} from '../../src/engine/buffer-recycler.js';

describe('BufferRecycler', () => {
  it('hands out power-of-two buffers from 64 KiB and reuses what is given back', () => {
    const r = new BufferRecycler(8 * 1024 * 1024);
    const small = r.take(1000);
    assert.equal(small.length, 1000);
    assert.equal(small.buffer.byteLength, 1000, 'below 64 KiB: an exact buffer of its own');
    const a = r.take(700_000);
    assert.equal(a.length, 700_000);
    assert.equal(a.buffer.byteLength, 1024 * 1024);
    assert.ok(isRecycledSize(a.buffer.byteLength));
    r.give(a.buffer as ArrayBuffer);
    assert.equal(r.kept, 1024 * 1024);
    const b = r.take(600_000);
    assert.equal(b.buffer, a.buffer, 'the same memory again');
    assert.equal(r.kept, 0);
    // Exact buffers and foreign ones are never kept.
    r.give(small.buffer as ArrayBuffer);
    r.give(new ArrayBuffer(RECYCLE_MIN));
    assert.equal(r.kept, 0);
  });

  it('serves a request from a kept buffer up to two sizes larger, never from a fresh one then', () => {
    const r = new BufferRecycler(64 * 1024 * 1024);
    const big = r.take(3 << 20);
    assert.equal(big.buffer.byteLength, 4 << 20);
    r.give(big.buffer as ArrayBuffer);
    const a = r.take(1 << 20);
    assert.equal(a.buffer, big.buffer, 'a 4 MiB buffer serves a 1 MiB request');
    assert.equal(a.length, 1 << 20);
    assert.equal(capacity(a), 4 << 20, 'and may grow in place to all of it');
    assert.equal(r.kept, 0);
    r.give(a.buffer as ArrayBuffer);
    const tiny = r.take(RECYCLE_MIN);
    assert.notEqual(tiny.buffer, big.buffer, 'but not one more than two sizes larger');
    assert.equal(r.kept, 4 << 20);
    assert.equal(capacity(Buffer.alloc(10)), 10, 'a buffer of no recycler: its own length');
  });

  it('keeps no more than its cap', () => {
    const r = new BufferRecycler(3 * 1024 * 1024);
    const bufs = [r.take(2 << 20), r.take(1 << 20), r.take(1 << 20)];
    for (const b of bufs) r.give(b.buffer as ArrayBuffer);
    assert.equal(r.kept, 3 * 1024 * 1024);
  });

  it('transfers a pooled view whole, and copies anything that shares its memory', () => {
    const pooled = threadRecycler.take(100_000);
    assert.equal(wholeBuffer(pooled), pooled.buffer);
    // A slice of Node's shared pool must never be detached: it is copied.
    const shared = Buffer.from('abc');
    const copy = wholeBuffer(shared);
    assert.notEqual(copy, shared.buffer);
    assert.deepEqual(Buffer.from(copy, 0, 3).toString(), 'abc');
    // A view that does not start the buffer is copied too.
    const inner = pooled.subarray(10, 20);
    assert.notEqual(wholeBuffer(inner), pooled.buffer);
  });

  it('takes back a pooled buffer that came from another thread', async () => {
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const ab = Buffer.allocUnsafeSlow(256 * 1024).buffer;
       parentPort.postMessage(ab, [ab]);`,
      { eval: true },
    );
    const ab = await new Promise<ArrayBuffer>((resolve) => worker.once('message', resolve));
    await worker.terminate();
    const r = new BufferRecycler();
    r.give(ab);
    assert.equal(r.kept, 0, 'not known as pooled yet');
    adoptPooled(ab);
    r.give(ab);
    assert.equal(r.kept, 256 * 1024);
  });
});
