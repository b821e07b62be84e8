/**
 * Engine threads started before the pool exists (src/engine/parallel/thread-start.ts): the pool
 * takes them instead of starting its own, they work like its own, and unused ones never keep a
 * process alive. Each case runs in a fresh Node process, since the threads started ahead are
 * module state of the process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';

const run = promisify(execFile);
const START = fileURLToPath(new URL('../../src/engine/parallel/thread-start.js', import.meta.url));
const POOL = fileURLToPath(new URL('../../src/engine/parallel/blob-pool.js', import.meta.url));
const CODEC = fileURLToPath(new URL('../../src/engine/pack/blob-codec.js', import.meta.url));

/** Runs `body` as an ES module in a child (10 s at most: a thread that held the process fails it). */
async function inChild(body: string, env: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>> {
  const script = `
    import * as start from ${JSON.stringify(START)};
    import { BlobPool } from ${JSON.stringify(POOL)};
    import { blobId, decodeBlob } from ${JSON.stringify(CODEC)};
    ${body}`;
  // A file, not -e: worker threads inherit the parent's flags, and --input-type breaks them.
  const dir = await mkdtemp(join(tmpdir(), 'thread-start-'));
  try {
    const file = join(dir, 'child.mjs');
    await writeFile(file, script);
    const { stdout } = await run(process.execPath, [file], {
      env: { ...process.env, ...env },
      timeout: 10_000,
    });
    return JSON.parse(stdout) as Record<string, unknown>;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('engine threads started ahead', () => {
  it('are the ones the pool uses, and they encode like its own', async () => {
    const r = await inChild(
      `
      start.startThreadsAhead();
      const pool = new BlobPool(2);
      pool.warm();
      const leftAfterWarm = start.takeThreadStartedAhead() === undefined ? 0 : 1;
      const key = Buffer.alloc(32, 1);
      const plain = Buffer.from('ahead of time\\n'.repeat(5000));
      const blob = await pool.encode(key, 'data', plain, blobId(plain), 3);
      const back = decodeBlob(key, blob.sealed, { id: blob.id, compressed: blob.compressed, uncompressedLength: plain.length }, 'p');
      await pool.close();
      console.log(JSON.stringify({ leftAfterWarm, same: back.equals(plain) }));`,
      { COFFER_ENGINE_THREADS: '2' },
    );
    assert.deepEqual(r, { leftAfterWarm: 0, same: true });
  });

  it('taken once online and used, still let the process end by itself', async () => {
    // The pool's listeners used to ref a thread that was online before the pool took it.
    const r = await inChild(
      `
      start.startThreadsAhead();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const pool = new BlobPool(2);
      pool.warm();
      const plain = Buffer.from('late\\n'.repeat(5000));
      const blob = await pool.encode(Buffer.alloc(32, 2), 'data', plain, blobId(plain), 3);
      console.log(JSON.stringify({ encoded: blob.id === blobId(plain) }));`,
      { COFFER_ENGINE_THREADS: '2' },
    );
    assert.deepEqual(r, { encoded: true });
  });

  it('start as many as COFFER_ENGINE_THREADS says, and none for a bad value', async () => {
    const count = `
      start.startThreadsAhead();
      let n = 0;
      while (start.takeThreadStartedAhead()) n++;
      console.log(JSON.stringify({ n }));
      process.exit(0);`;
    assert.deepEqual(await inChild(count, { COFFER_ENGINE_THREADS: '3' }), { n: 3 });
    assert.deepEqual(await inChild(count, { COFFER_ENGINE_THREADS: '0' }), { n: 0 });
    assert.deepEqual(await inChild(count, { COFFER_ENGINE_THREADS: 'lots' }), { n: 0 });
    // The main thread's lane stands in for one of them.
    const lane = { COFFER_ENGINE_THREADS: '3', COFFER_MAIN_THREAD_WORK: 'on' };
    assert.deepEqual(await inChild(count, lane), { n: 2 });
    assert.deepEqual(await inChild(count, { ...lane, COFFER_MAIN_THREAD_WORK: 'sometimes' }), { n: 0 });
  });

  it('are one fewer for a restore in the foreground, unless COFFER_MAIN_THREAD_WORK=off', async () => {
    const START_AHEAD = fileURLToPath(new URL('../../src/cli/start-ahead.js', import.meta.url));
    const count = (argv: string[]) => `
      const { startAhead } = await import(${JSON.stringify(START_AHEAD)});
      startAhead(${JSON.stringify(['node', 'coffer', ...argv])});
      let n = 0;
      while (start.takeThreadStartedAhead()) n++;
      console.log(JSON.stringify({ n, lane: start.mainThreadLane() }));
      process.exit(0);`;
    const env = { COFFER_ENGINE_THREADS: '2', COFFER_KEY_PREFETCH: 'off' };
    const restore = ['restore', 'docs', '--target', '/tmp/out'];
    assert.deepEqual(await inChild(count(restore), env), { n: 1, lane: true });
    assert.deepEqual(await inChild(count(restore), { ...env, COFFER_MAIN_THREAD_WORK: 'off' }), {
      n: 2,
      lane: false,
    });
    assert.deepEqual(await inChild(count(['backup', 'docs']), env), { n: 2, lane: false });
    assert.deepEqual(await inChild(count(['backup', 'docs']), { ...env, COFFER_MAIN_THREAD_WORK: 'on' }), {
      n: 1,
      lane: true,
    });
  });

  it('never keep the process alive when no work comes', async () => {
    // Exits on its own once the main script is done, before and after the threads are online.
    const r = await inChild(
      `
      start.startThreadsAhead();
      setTimeout(() => console.log(JSON.stringify({ exited: 'by itself' })), 300);`,
      { COFFER_ENGINE_THREADS: '2' },
    );
    assert.deepEqual(r, { exited: 'by itself' });
    assert.deepEqual(
      await inChild(`start.startThreadsAhead(); console.log(JSON.stringify({ exited: 'at once' }));`),
      { exited: 'at once' },
    );
  });
});
