/**
 * The process memory settings (app/process-tuning.ts), each in a fresh Node process: the
 * allocator's thresholds are process-wide and can be set only once per process.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/app/process-tuning.js', import.meta.url));
const START_AHEAD = fileURLToPath(new URL('../../src/cli/start-ahead.js', import.meta.url));

/**
 * What a child Node printed after running `script` (an ES module) with `nodeArgs`, in an
 * environment without the operator's own tuning variables, plus `env`.
 */
function childOutput(script: string, nodeArgs: string[], env: NodeJS.ProcessEnv): string {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of [
    'MALLOC_MMAP_THRESHOLD_',
    'MALLOC_TRIM_THRESHOLD_',
    'COFFER_MEMORY_TUNING',
    'COFFER_JIT_TUNING',
  ])
    delete clean[name];
  return execFileSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    env: { ...clean, ...env },
    encoding: 'utf8',
  });
}

/**
 * Runs `body` in a child with the module imported as `t`; returns what it printed as JSON.
 * `--expose-gc` so the child can free an ArrayBuffer when it chooses.
 */
function inChild(body: string, env: NodeJS.ProcessEnv = {}): Record<string, unknown> {
  const script = `import * as t from ${JSON.stringify(MODULE)};\n${body}`;
  return JSON.parse(childOutput(script, ['--expose-gc'], env)) as Record<string, unknown>;
}

/**
 * Frees an 8 MiB buffer (which, left to itself, glibc takes as a reason to raise its mmap
 * threshold to 8 MiB), then reports whether a fresh 1 MiB buffer was mapped on its own.
 */
const PROBE = `
const outcome = process.argv.includes('--no-tune') ? null : t.tuneProcessMemory();
let big = Buffer.allocUnsafeSlow(8 << 20);
big.fill(1);
big = null;
for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
const before = t.allocatorStats();
const probe = Buffer.allocUnsafeSlow(1 << 20);
probe.fill(2);
const after = t.allocatorStats();
console.log(JSON.stringify({ outcome, mapped: after.mmappedBlocks - before.mmappedBlocks, held: probe.length }));
`;

describe('process memory tuning', () => {
  it('builds the allocator addon (npm run build:native) and reads glibc statistics', () => {
    const r = inChild(`console.log(JSON.stringify({ stats: t.allocatorStats() }));`);
    const stats = r.stats as { arenaBytes: number; inUseBytes: number } | null;
    assert.ok(stats, 'allocatorStats() is null: the addon did not load');
    assert.ok(stats.arenaBytes > 0 && stats.inUseBytes > 0, JSON.stringify(stats));
  });

  it('keeps chunk-sized buffers out of the arenas after a large one was freed', () => {
    const tuned = inChild(PROBE);
    assert.deepEqual(tuned.outcome, {
      allocator: 'tuned',
      v8Flags: ['--semi-space-growth-factor=1', '--heap-growing-percent=30'],
    });
    assert.equal(tuned.mapped, 1, 'with the fixed threshold a 1 MiB buffer is mapped on its own');
    // The control: glibc's own behaviour, which the tuning exists to change.
    const untuned = inChild(PROBE.replace("process.argv.includes('--no-tune')", 'true'));
    assert.equal(untuned.outcome, null);
    assert.equal(untuned.mapped, 0, "glibc's raised threshold serves 1 MiB from an arena");
  });

  it("leaves the allocator to an operator who set glibc's variables", () => {
    const r = inChild(PROBE, { MALLOC_MMAP_THRESHOLD_: String(16 << 20) });
    assert.deepEqual(r.outcome, {
      allocator: 'left to the operator',
      v8Flags: ['--semi-space-growth-factor=1', '--heap-growing-percent=30'],
    });
    assert.equal(r.mapped, 0, 'their 16 MiB threshold holds');
  });

  it("holds the main thread's young generation, also after a worker thread started", () => {
    const probe = (tune: boolean) =>
      inChild(`
        import { Worker } from 'node:worker_threads';
        import { getHeapSpaceStatistics } from 'node:v8';
        if (${tune}) t.tuneProcessMemory();
        const w = new Worker('setTimeout(() => {}, 50)', { eval: true });
        await new Promise((r) => w.once('online', r));
        await new Promise((r) => setImmediate(r));
        // Garbage with a high survival rate: what makes V8 grow the young generation.
        let keep = [];
        for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 100000) keep = []; }
        const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
        await new Promise((r) => w.once('exit', r));
        console.log(JSON.stringify({ mb: space / 2 ** 20 }));
      `).mb as number;
    const tuned = probe(true);
    const untuned = probe(false);
    assert.ok(tuned <= 4, `young generation ${tuned} MiB with tuning`);
    assert.ok(untuned >= 16, `the control grew only to ${untuned} MiB`);
  });

  it('does nothing with COFFER_MEMORY_TUNING=off, and applies once per process', () => {
    const off = inChild(`console.log(JSON.stringify({ outcome: t.tuneProcessMemory() }));`, {
      COFFER_MEMORY_TUNING: 'off',
    });
    assert.deepEqual(off.outcome, { allocator: 'left to the operator', v8Flags: [] });
    const twice = inChild(
      `const a = t.tuneProcessMemory(); const b = t.tuneProcessMemory({ COFFER_MEMORY_TUNING: 'off' });
       console.log(JSON.stringify({ same: a === b, allocator: b.allocator }));`,
    );
    assert.deepEqual(twice, { same: true, allocator: 'tuned' });
  });
});

/**
 * A function run 500 times: TurboFan optimises it under V8's default interrupt budget (measured
 * on Node 20: from 150 calls up) but not under ONE_SHOT_V8_FLAGS (not below 1,000 calls). Each
 * thread has its own name for it; the waits let a concurrent compilation finish and say so.
 */
const lukewarm = (
  name: string,
) => `function ${name}(n) { let s = 0; for (let i = 0; i < n; i++) s = (s + i * 31) | 0; return s; }
let acc = 0; for (let j = 0; j < 500; j++) acc ^= ${name}(20);`;

/** How often V8 said it optimised each thread's lukewarm function in a child running `body`. */
function lukewarmOptimisations(body: string, env: NodeJS.ProcessEnv = {}): { main: number; worker: number } {
  const inWorker = `${lukewarm('onWorker')}\nsetTimeout(() => {}, 200);`;
  const script = `import * as t from ${JSON.stringify(MODULE)};
import { startAhead } from ${JSON.stringify(START_AHEAD)};
import { Worker } from 'node:worker_threads';
${body}
${lukewarm('onMain')}
await new Promise((r) => setTimeout(r, 200));
const w = new Worker(${JSON.stringify(inWorker)}, { eval: true });
await new Promise((r) => w.once('exit', r));`;
  const out = childOutput(script, ['--trace-opt'], env);
  const count = (name: string) =>
    out.match(new RegExp(`completed optimizing [^\\n]*<JSFunction ${name} `, 'g'))?.length ?? 0;
  return { main: count('onMain'), worker: count('onWorker') };
}

describe('compiler tuning for one-shot commands', () => {
  it('has V8 wait longer before optimising, on the main thread and on threads started later', () => {
    assert.deepEqual(lukewarmOptimisations('t.tuneCompilerForOneShot();'), { main: 0, worker: 0 });
    // The control: V8's default budget, which the tuning exists to change.
    assert.deepEqual(lukewarmOptimisations(''), { main: 1, worker: 1 });
  });

  it('applies to a backup or restore in the foreground, not to serve, worker or a detached job', () => {
    const home = mkdtempSync(join(tmpdir(), 'coffer-jit-'));
    const env = { COFFER_HOME: home, COFFER_ENGINE_THREADS: '1' };
    const run = (argv: string[]) =>
      lukewarmOptimisations(`startAhead(${JSON.stringify(['node', 'coffer', ...argv])});`, env).main;
    try {
      assert.equal(run(['backup', 'docs']), 0);
      assert.equal(run(['restore', 'docs', '--target', join(home, 'out')]), 0);
      assert.equal(run(['serve']), 1);
      assert.equal(run(['worker']), 1);
      assert.equal(run(['backup', 'docs', '--detach']), 1);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('keeps V8 defaults with COFFER_JIT_TUNING=off, and applies once per process', () => {
    const r = inChild(
      `const a = t.tuneCompilerForOneShot({ COFFER_JIT_TUNING: 'off' }); const b = t.tuneCompilerForOneShot();
       console.log(JSON.stringify({ a, same: a === b }));`,
    );
    assert.deepEqual(r, { a: [], same: true });
    const on = inChild(`console.log(JSON.stringify({ flags: t.tuneCompilerForOneShot({}) }));`);
    assert.deepEqual(on.flags, ['--interrupt-budget=1081344']);
    assert.deepEqual(lukewarmOptimisations("t.tuneCompilerForOneShot({ COFFER_JIT_TUNING: 'off' });"), {
      main: 1,
      worker: 1,
    });
  });
});
