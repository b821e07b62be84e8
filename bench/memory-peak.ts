/**
 * What a coffer first backup's peak resident memory is made of: the process's resident memory
 * sampled every few milliseconds from /proc/PID/smaps_rollup, split into pages of files (the
 * `node` binary, shared libraries, native addons) and anonymous memory (the JavaScript heaps,
 * the C allocator's arenas, chunk buffers), beside the floors a backup cannot go below: `node`
 * doing nothing, `coffer --version`, and a first backup of a tree of a few files. Why: the engine
 * table's peak RSS row (from `/usr/bin/time`) is one number, and what can be cut from it depends
 * on how much of it is there whatever the tree (docs/benchmarks.md, "Peak RSS").
 *
 *   npm run build --silent && node dist/bench/memory-peak.js [--rounds 3] [--tree large|small|both]
 *
 * It backs up the engine benchmark's datasets (bench/.data/engine/datasets; run
 * `npm run bench:engine -- --prepare --keep-datasets` first) into fresh vaults under a temporary
 * directory, with the environment the engine benchmark gives coffer (bench/engine-tools.ts).
 * The small tree is /usr/share/doc/bash, copied. Sampling can miss a peak shorter than its
 * period: the `/usr/bin/time` column is the kernel's high-water mark of the same process.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from './engine-run.js';
import { COFFER_BIN, cofferEnv } from './engine-tools.js';
import { median, table } from './lib/bench-catalog.js';

const DATASETS = new URL('../../bench/.data/engine/datasets/', import.meta.url).pathname;
const SAMPLE_MS = 4;

interface Peak {
  /** Resident memory at the sampled peak, MB (10^6 bytes). */
  rss: number;
  anon: number;
  file: number;
  /** The kernel's high-water mark of resident memory (`/usr/bin/time`'s maximum RSS), MB. */
  hwm: number;
  wall: number;
}

/** Reads the kB fields of /proc/PID/smaps_rollup, or null once the process is gone. */
function rollup(pid: number): Record<string, number> | null {
  try {
    const out: Record<string, number> = {};
    for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB/.exec(line);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  } catch {
    return null;
  }
}

/** Runs `node args…` under /usr/bin/time and samples the node process until it exits. */
async function measure(args: string[], env: NodeJS.ProcessEnv): Promise<Peak> {
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%M', process.execPath, ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let best = { rss: 0, anon: 0 };
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    // The node process is /usr/bin/time's only child.
    const kids = readChildren(child.pid!);
    const r = kids.length > 0 ? rollup(kids[0]!) : null;
    if (r && (r.Rss ?? 0) > best.rss) best = { rss: r.Rss ?? 0, anon: r.Anonymous ?? 0 };
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  const code = await exited;
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited ${String(code)}:\n${stderr.slice(-2000)}`);
  const hwm = Number(stderr.trim().split('\n').at(-1));
  return {
    // Both report KiB.
    rss: (best.rss * 1024) / 1e6,
    anon: (best.anon * 1024) / 1e6,
    file: ((best.rss - best.anon) * 1024) / 1e6,
    hwm: (hwm * 1024) / 1e6,
    wall: (performance.now() - started) / 1000,
  };
}

function readChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** A first backup of `source` into a new vault; the vault is deleted after. */
async function firstBackup(source: string): Promise<Peak> {
  const work = await mkdtemp(join(tmpdir(), 'coffer-memory-peak-'));
  try {
    const env = cofferEnv(join(work, 'home'));
    await run(process.execPath, [COFFER_BIN, 'vault', 'create', 'v', '--path', join(work, 'vault')], { env });
    await run(process.execPath, [COFFER_BIN, 'item', 'add', 't', '--vault', 'v', '--path', source], { env });
    return await measure([COFFER_BIN, 'backup', 't', '--json'], env);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, tree: { type: 'string', default: 'both' } },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a whole number from 1');
if (!['large', 'small', 'both'].includes(values.tree)) throw new Error('--tree must be large, small or both');
const trees = values.tree === 'both' ? ['large', 'small'] : [values.tree];
for (const t of trees) {
  if (!existsSync(join(DATASETS, `${t}-s1`))) {
    throw new Error(`no dataset ${t}-s1: run npm run bench:engine -- --prepare --keep-datasets first`);
  }
}

const tinyDir = await mkdtemp(join(tmpdir(), 'coffer-memory-tiny-'));
await cp('/usr/share/doc/bash', join(tinyDir, 'bash'), { recursive: true });
const env = cofferEnv(join(tinyDir, 'home'));
const cases: [string, () => Promise<Peak>][] = [
  ['node -e 0', () => measure(['-e', '0'], env)],
  ['coffer --version', () => measure([COFFER_BIN, '--version'], env)],
  ['first backup, /usr/share/doc/bash', () => firstBackup(tinyDir)],
  ...trees.map((t): [string, () => Promise<Peak>] => [
    `first backup, ${t} tree`,
    () => firstBackup(join(DATASETS, `${t}-s1`)),
  ]),
];
const results = new Map<string, Peak[]>(cases.map(([name]) => [name, []]));
try {
  // Alternated round by round, so drift in the machine hits every case alike.
  for (let r = 0; r < rounds; r++) {
    for (const [name, run] of cases) results.get(name)!.push(await run());
  }
} finally {
  await rm(tinyDir, { recursive: true, force: true });
}

const mb = (x: number): string => `${x.toFixed(1)} MB`;
const rows = cases.map(([name]) => {
  const ps = results.get(name)!;
  const byRss = [...ps].sort((a, b) => a.rss - b.rss)[Math.floor((ps.length - 1) / 2)]!;
  return [
    name,
    mb(median(ps.map((p) => p.hwm))),
    ps.map((p) => p.hwm.toFixed(0)).join(' / '),
    mb(byRss.rss),
    mb(byRss.anon),
    mb(byRss.file),
    `${median(ps.map((p) => p.wall)).toFixed(2)} s`,
  ];
});
console.log(
  `peak resident memory, medians of ${rounds} rounds (MB = 10^6 bytes; sampled every ${SAMPLE_MS} ms)\n`,
);
console.log(
  table(
    [
      'process',
      'max RSS (time)',
      'by round',
      'sampled peak',
      'of it anonymous',
      'of it file pages',
      'wall time',
    ],
    rows,
  ),
);
