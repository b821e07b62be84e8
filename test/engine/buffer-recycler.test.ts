import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  adoptPooled,
  BufferRecycler,
  capacity,
  discard,
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

  it('keeps no more than its cap, and frees what comes back past it', () => {
    const r = new BufferRecycler(4 * 1024 * 1024);
    const bufs = [r.take(2 << 20), r.take(1 << 20), r.take(1 << 20), r.take(1 << 20)];
    const abs = bufs.map((b) => b.buffer as ArrayBuffer);
    for (const ab of abs) r.give(ab);
    assert.equal(r.kept, 4 * 1024 * 1024);
    assert.deepEqual(
      abs.map((ab) => ab.byteLength),
      [2 << 20, 1 << 20, 1 << 20, 0],
      'the one past the cap is freed (detached), the kept ones are whole',
    );
  });

  it('frees a kept buffer that no take wanted for its idle time, and keeps one in use', async () => {
    const r = new BufferRecycler(64 * 1024 * 1024, 50);
    const idle = r.take(1 << 20).buffer as ArrayBuffer;
    const busy = r.take(256 * 1024).buffer as ArrayBuffer;
    r.give(idle);
    r.give(busy);
    await sleep(30);
    // Taken and given back within the idle time: its clock starts again.
    const again = r.take(256 * 1024);
    assert.equal(again.buffer, busy);
    r.give(busy);
    await sleep(30);
    r.trim();
    assert.equal(idle.byteLength, 0, 'idle for 60 ms: freed');
    assert.equal(busy.byteLength, 256 * 1024, 'given back 30 ms ago: kept');
    assert.equal(r.kept, 256 * 1024);
    assert.equal(r.take(256 * 1024).buffer, busy);
    const fresh = r.take(1 << 20);
    assert.notEqual(fresh.buffer, idle, 'the freed one is not handed out again');
    assert.equal(fresh.length, 1 << 20);
  });

  it('returns a discarded buffer to the system without waiting for a full collection', () => {
    // In a child, so that nothing else of the test process moves its RSS: 256 MiB of touched
    // buffers are held until they reach the old generation, then discarded; a few minor
    // collections later (young garbage only) the memory is gone. Left to the collector
    // instead, it stays until a full collection.
    const module = fileURLToPath(new URL('../../src/engine/buffer-recycler.js', import.meta.url));
    const script = `
      const { discard } = await import(${JSON.stringify(module)});
      const { readFileSync } = await import('node:fs');
      const rssMb = () => Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096 / 2 ** 20;
      let held = [];
      for (let i = 0; i < 128; i++) { const ab = new ArrayBuffer(2 << 20); new Uint8Array(ab).fill(1); held.push(ab); }
      let junk = [];
      const churn = (n) => { for (let i = 0; i < n; i++) { junk.push({ i }); if (junk.length > 1e5) junk = []; } };
      churn(3e6);
      const before = rssMb();
      for (const ab of held) discard(ab);
      held = null;
      churn(2e6);
      console.log(JSON.stringify({ before, after: rssMb() }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const { before, after } = JSON.parse(out) as { before: number; after: number };
    assert.ok(before > 256, `the buffers were in memory (${before.toFixed(0)} MB)`);
    assert.ok(before - after > 200, `RSS went from ${before.toFixed(0)} to ${after.toFixed(0)} MB`);
  });

  it('detaches a discarded buffer, so no view of it can read freed memory', () => {
    const ab = new ArrayBuffer(1024);
    const view = new Uint8Array(ab);
    discard(ab);
    assert.equal(ab.byteLength, 0);
    assert.equal(view.length, 0);
    // Again, or given back after it was freed past the cap: nothing happens, nothing is kept.
    discard(ab);
    const r = new BufferRecycler(1 << 20, 0);
    const big = r.take(2 << 20).buffer as ArrayBuffer;
    r.give(big);
    assert.equal(big.byteLength, 0, 'past the cap: freed');
    r.give(big);
    assert.equal(r.kept, 0);
    r.trim();
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
