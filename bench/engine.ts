/**
 * Data engine benchmark (issue 6): coffer, restic and borg side by side on the same real trees,
 * in alternation (coffer, restic, borg, coffer, restic, borg, …), warm cache, N rounds. Prints a
 * markdown section with medians, ratios to restic and the issue's targets, the machine's
 * physical ceilings, and the verification of every coffer vault with `check --read-data`.
 *
 *   npm run bench:engine                                   # full: ≈1.4 GB + ≈30,000 files, 3 rounds
 *   npm run bench:engine -- --scale 0.15                   # quick: ≈200 MB + ≈4,500 files
 *   npm run bench:engine -- --dataset small --rounds 1 --tools coffer,restic
 *   npm run bench:engine -- --profile --write-doc          # also profile one coffer first backup; update docs/benchmarks.md
 *   npm run bench:engine -- --prepare                      # only copy the datasets (nothing measured)
 *   npm run bench:engine -- --restore-to /dev/shm          # restore into tmpfs (see RESTORE_DIR)
 *
 * Datasets are copies under bench/.data/engine/datasets/ (git-ignored; removed after the run
 * unless --keep-datasets, because `eslint .` would lint their .js files; a kept copy is reused by
 * later runs of the same scale); repositories and restores go to bench/.data/engine/run/ (emptied at start;
 * coffer's vaults stay there after the run for inspection).
 */
import { cpus, loadavg, release, totalmem } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as prettier from 'prettier';
import {
  buildDataset,
  changeOnePercent,
  countTree,
  type Manifest,
  readThroughput,
  type TreeName,
} from './engine-datasets.js';
import { type Ceiling, measureCeilings } from './engine-ceilings.js';
import { summariseProfiles, type ProfileSummary } from './engine-profile.js';
import { type Measure, run, TIME_BIN, timed } from './engine-run.js';
import {
  COFFER_BIN,
  cofferEnv,
  completedJob,
  droppedStartUpVariables,
  makeRepo,
  type ToolName,
  TOOLS,
  toolVersions,
} from './engine-tools.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const DATA_DIR = join(REPO_ROOT, 'bench', '.data', 'engine');
const RUN_DIR = join(DATA_DIR, 'run');
const DOC = join(REPO_ROOT, 'docs', 'benchmarks.md');
const SECTION = '## Data engine (issue 6)';

const USAGE =
  'usage: engine.js [--rounds N>=1] [--scale 0<F<=1] [--dataset large|small|both] [--tools coffer,restic,borg] [--profile] [--write-doc] [--skip-cold] [--prepare] [--max-minutes M] [--keep-datasets] [--restore-to DIR]';
const OPTIONS = {
  rounds: { type: 'string', default: '3' },
  scale: { type: 'string', default: '1' },
  dataset: { type: 'string', default: 'both' },
  tools: { type: 'string', default: TOOLS.join(',') },
  profile: { type: 'boolean', default: false },
  'write-doc': { type: 'boolean', default: false },
  'skip-cold': { type: 'boolean', default: false },
  prepare: { type: 'boolean', default: false },
  'max-minutes': { type: 'string', default: '0' },
  'keep-datasets': { type: 'boolean', default: false },
  'restore-to': { type: 'string', default: '' },
  help: { type: 'boolean', default: false },
} as const;
/** An unknown or malformed option prints the usage, not a stack trace. */
function parseOptions() {
  try {
    return parseArgs({ options: OPTIONS });
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}
const { values } = parseOptions();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
/**
 * Where restores go: the run directory (the disk) by default. `--restore-to /dev/shm` (tmpfs)
 * measures the tools rather than the file system: on this machine's ext4, creating 30,000 files
 * took 2–3× longer in some runs than in others, for every tool alike (perf: the inode
 * allocator's recently_deleted scan under ext4_create, after earlier trees were deleted).
 */
const RESTORE_DIR = values['restore-to'];
const ROUNDS = Number(values.rounds);
/** 0: no limit. Otherwise no round starts that would not finish (with checks and profile) in time. */
const MAX_MS = Number(values['max-minutes']) * 60_000;
const SCALE = Number(values.scale);
const TREES: TreeName[] =
  values.dataset === 'both'
    ? ['large', 'small']
    : ([values.dataset] as TreeName[]).filter((t) => t === 'large' || t === 'small');
const TOOL_LIST = values.tools.split(',').filter((t): t is ToolName => (TOOLS as string[]).includes(t));
if (!(ROUNDS >= 1) || !(SCALE > 0 && SCALE <= 1) || TREES.length === 0 || TOOL_LIST.length === 0) {
  console.error(USAGE);
  process.exit(2);
}
const argv = process.argv.slice(2).join(' ');
const COMMAND =
  process.env.npm_lifecycle_event === 'bench:engine'
    ? `npm run bench:engine${argv ? ` -- ${argv}` : ''}`
    : `node dist/bench/engine.js${argv ? ` ${argv}` : ''}`;

type Scenario = 'first' | 'nochange' | 'change' | 'restore';
const SCENARIOS: Scenario[] = ['first', 'nochange', 'change', 'restore'];
type Sample = Omit<Measure, 'stdout' | 'stderr'> & { warnings?: string };

interface Results {
  /** results[tree][tool][scenario] = one sample per round */
  times: Record<string, Record<string, Record<string, Sample[]>>>;
  sizes: Record<string, Record<string, number[]>>;
  changes: Record<string, { files: number; bytes: number }[]>;
  restoreMismatches: string[];
  failures: string[];
}

const results: Results = { times: {}, sizes: {}, changes: {}, restoreMismatches: [], failures: [] };
const t0 = Date.now();
const log = (s: string) =>
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${s}\n`);

function record(tree: string, tool: string, scenario: Scenario, m: Measure): Sample {
  const { stdout: _o, stderr, ...rest } = m;
  const sample: Sample = m.exitCode !== 0 ? { ...rest, warnings: stderr.slice(-1000) } : rest;
  const byTool = (results.times[tree] ??= {});
  const byScenario = (byTool[tool] ??= {});
  (byScenario[scenario] ??= []).push(sample);
  return sample;
}

const fmtS = (s: number) => (Number.isFinite(s) ? `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s` : '–');
const fmtMB = (b: number) => (Number.isFinite(b) ? `${(b / 1e6).toFixed(b < 1e7 ? 1 : 0)} MB` : '–');
const fmtRate = (r: number) => `${(r / 1e6).toFixed(0)} MB/s`;
const fmtX = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * Brings a dataset back into the page cache before a timed backup. borg drops each source file
 * from the cache once it has read it (posix_fadvise DONTNEED), so without this whichever tool
 * came after borg read the tree from disk: coffer's small-tree first backup took 7–8 s right
 * after borg's and 4.5–5 s otherwise, the difference all in system time.
 */
function warmCache(m: Manifest): void {
  readThroughput(m);
}

async function sync(): Promise<void> {
  await run('sync', []);
}

// ---------------------------------------------------------------- machine and set-up

function machine(): string {
  const model = cpus()[0]?.model ?? 'unknown CPU';
  let flags = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const f = /^flags\s*:\s*(.*)$/m.exec(info)?.[1]?.split(' ') ?? [];
    flags = ['sha_ni', 'aes', 'avx2', 'avx512f'].filter((x) => f.includes(x)).join(', ');
  } catch {
    // not Linux
  }
  return `nproc ${cpus().length}, ${model}${flags ? ` (${flags})` : ''}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${release()}`;
}

if (!existsSync(TIME_BIN)) {
  console.error(`${TIME_BIN} is missing: apt-get install -y time`);
  process.exit(2);
}
const loadStart = loadavg();
const versions = await toolVersions();
for (const t of TOOL_LIST) {
  if (t !== 'coffer' && versions[t]?.startsWith('not available')) {
    console.error(
      `${t}: ${versions[t]} — apt-get install -y restic borgbackup, or leave it out with --tools`,
    );
    process.exit(2);
  }
}
log(
  `machine: ${machine()}; ${JSON.stringify(versions)}; load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`,
);

mkdirSync(DATA_DIR, { recursive: true });
const manifests: Partial<Record<TreeName, Manifest>> = {};
for (const tree of TREES) manifests[tree] = await buildDataset(tree, SCALE, DATA_DIR, log);
if (values.prepare) {
  log('datasets ready (--prepare: nothing is measured)');
  process.exit(0);
}

// ---------------------------------------------------------------- reads and ceilings

const reads: { tree: string; cold: number | null; warm: number }[] = [];
let coldNote = '';
try {
  if (values['skip-cold']) throw Object.assign(new Error('skipped'), { code: 'skipped with --skip-cold' });
  await sync();
  writeFileSync('/proc/sys/vm/drop_caches', '3');
  coldNote = 'page cache dropped (`echo 3 > /proc/sys/vm/drop_caches`) before each cold read';
} catch (err) {
  coldNote = `cold read not measured: writing /proc/sys/vm/drop_caches failed (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
}
const canDrop = coldNote.startsWith('page cache dropped');
for (const tree of TREES) {
  const m = manifests[tree]!;
  let cold: number | null = null;
  if (canDrop) {
    await sync();
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    cold = readThroughput(m);
  } else {
    readThroughput(m); // warm-up read: every later measurement runs on a warm cache
  }
  const warm = readThroughput(m);
  reads.push({ tree, cold, warm });
  log(`read ${tree}: cold ${cold === null ? 'n/a' : fmtRate(cold)}, warm ${fmtRate(warm)}`);
}
const ceilings: Ceiling[] = await measureCeilings(manifests[TREES[0]!]!);
for (const c of ceilings) log(`ceiling ${c.what}: ${fmtRate(c.rate)} (${c.note})`);

// ---------------------------------------------------------------- rounds

await rm(RUN_DIR, { recursive: true, force: true });
const cofferHomes: string[] = [];
let roundsDone = 0;
let stoppedEarly = '';
let lastRoundMs = 0;
const cofferMs = (tree: string, sc: Scenario) =>
  (results.times[tree]?.coffer?.[sc] ?? []).reduce((a, x) => Math.max(a, x.wallS * 1000), 0);
for (let round = 1; round <= ROUNDS; round++) {
  if (round > 1 && MAX_MS > 0) {
    // What is left after this round: a check per coffer vault (about a restore each) and the profile.
    const checksMs = TREES.reduce((a, t) => a + cofferMs(t, 'restore'), 0) * round;
    const profileMs = values.profile ? cofferMs(TREES[0]!, 'first') * 1.3 : 0;
    const projected = Date.now() - t0 + lastRoundMs + checksMs + profileMs;
    if (projected > MAX_MS) {
      stoppedEarly = `stopped after ${roundsDone} of ${ROUNDS} rounds: round ${round} would have ended the run after ${(projected / 60000).toFixed(0)} min, over --max-minutes ${values['max-minutes']}`;
      log(stoppedEarly);
      break;
    }
  }
  const roundStarted = Date.now();
  const work = join(RUN_DIR, `r${round}`);
  await mkdir(work, { recursive: true });
  const restoredTrees: string[] = [];
  if (TOOL_LIST.includes('coffer')) cofferHomes.push(join(work, 'coffer-home'));
  // The order rotates from round to round (coffer, restic, borg; then restic, borg, coffer; …),
  // so whatever the previous tool leaves behind (deleted repositories, dirty pages, a cooling
  // cache) does not always fall on the same tool.
  const order = TOOL_LIST.map((_, i) => TOOL_LIST[(i + round - 1) % TOOL_LIST.length]!);
  for (const tree of TREES) {
    const m = manifests[tree]!;
    for (const tool of order) {
      const label = `r${round} ${tree} ${tool}`;
      const repo = makeRepo(tool, { work, tree, source: m.root, timeFile: join(work, 'time.txt') });
      let change: Awaited<ReturnType<typeof changeOnePercent>> | null = null;
      try {
        await repo.init();
        warmCache(m);
        await sync();
        const first = record(tree, tool, 'first', await repo.backup('first'));
        const size = await repo.size();
        ((results.sizes[tree] ??= {})[tool] ??= []).push(size);
        log(
          `${label}: first backup ${fmtS(first.wallS)}, peak RSS ${fmtMB(first.maxRssBytes)}, repo ${fmtMB(size)}`,
        );
        warmCache(m);
        await sync();
        const none = record(tree, tool, 'nochange', await repo.backup('nochange'));
        log(`${label}: no-change backup ${fmtS(none.wallS)}, peak RSS ${fmtMB(none.maxRssBytes)}`);
        change = await changeOnePercent(m, round);
        if (tool === order[0])
          (results.changes[tree] ??= []).push({ files: change.files, bytes: change.bytes });
        warmCache(m);
        await sync();
        const changed = record(tree, tool, 'change', await repo.backup('change'));
        log(`${label}: 1 % change (${change.files} files) backup ${fmtS(changed.wallS)}`);
        await change.revert();
        change = null;
        const target = join(RESTORE_DIR || work, `restore-r${round}-${tree}-${tool}`);
        await rm(target, { recursive: true, force: true });
        await mkdir(target, { recursive: true });
        await sync();
        const restored = record(tree, tool, 'restore', await repo.restore(target));
        const got = await countTree(target);
        if (got.files !== m.files || got.bytes !== m.bytes || got.symlinks !== m.symlinks) {
          const msg = `${label}: restore has ${got.files} files / ${got.bytes} bytes / ${got.symlinks} symlinks, the dataset ${m.files} / ${m.bytes} / ${m.symlinks}`;
          results.restoreMismatches.push(msg);
          log(msg);
        }
        log(`${label}: restore ${fmtS(restored.wallS)}`);
        // Kept until the round ends: ext4 scans for recently deleted inodes (about 30 s) when it
        // creates files, so deleting a restored tree right away slowed the next tool's restore
        // (seen with perf: recently_deleted under ext4_create), and unevenly between tools.
        restoredTrees.push(target);
      } catch (err) {
        const msg = `${label}: ${(err as Error).message.split('\n').slice(0, 6).join(' / ')}`;
        results.failures.push(msg);
        log(`FAILED ${msg}`);
      } finally {
        if (change) await change.revert();
        await repo.discard();
      }
    }
  }
  for (const t of restoredTrees) await rm(t, { recursive: true, force: true });
  await sync();
  roundsDone++;
  lastRoundMs = Date.now() - roundStarted;
}

// ---------------------------------------------------------------- verify every coffer vault

interface CheckResult {
  vault: string;
  ok: boolean;
  wallS: number;
  detail: string;
}
const checks: CheckResult[] = [];
for (const home of cofferHomes) {
  for (const tree of TREES) {
    const vault = `bench-${tree}`;
    const where = `${home.slice(RUN_DIR.length + 1).split('/')[0]}/${vault}`;
    try {
      const m = await timed(process.execPath, [COFFER_BIN, 'check', vault, '--read-data', '--json'], {
        env: cofferEnv(home),
        timeFile: join(RUN_DIR, 'time-check.txt'),
        okCodes: [0, 1],
      });
      const doc = JSON.parse(m.stdout) as {
        job: { state: string };
        report: { ok: boolean; issues: { severity: string }[]; counts: Record<string, number> } | null;
      };
      const errors = doc.report?.issues.filter((i) => i.severity === 'error').length ?? NaN;
      const c = doc.report?.counts ?? {};
      checks.push({
        vault: where,
        ok: m.exitCode === 0 && doc.report?.ok === true,
        wallS: m.wallS,
        detail: `job ${doc.job.state}; ${c.snapshots} snapshots, ${c.packs} packs, ${c.blobs} blobs read and hashed; ${errors} errors`,
      });
    } catch (err) {
      checks.push({
        vault: where,
        ok: false,
        wallS: NaN,
        detail: (err as Error).message.split('\n')[0] ?? '',
      });
    }
    log(`check --read-data ${where}: ${checks[checks.length - 1]!.ok ? 'ok' : 'FAILED'}`);
  }
}

// ---------------------------------------------------------------- profile one coffer first backup

let profile: (ProfileSummary & { tree: string; wallS: number }) | null = null;
if (values.profile) {
  const tree = TREES[0]!;
  const work = join(RUN_DIR, 'profile');
  const profDir = join(work, 'cpuprofile');
  await mkdir(profDir, { recursive: true });
  const repo = makeRepo('coffer', {
    work,
    tree,
    source: manifests[tree]!.root,
    timeFile: join(work, 'time.txt'),
  });
  await repo.init();
  await sync();
  const m = await timed(
    process.execPath,
    ['--cpu-prof', `--cpu-prof-dir=${profDir}`, COFFER_BIN, 'backup', tree, '--json'],
    { env: cofferEnv(join(work, 'coffer-home')), timeFile: join(work, 'time.txt') },
  );
  completedJob(m, 'profiled coffer backup');
  profile = { ...summariseProfiles(profDir, REPO_ROOT), tree, wallS: m.wallS };
  log(`profile: ${profile.files.length} profile(s), ${profile.totalMs.toFixed(0)} ms sampled, in ${profDir}`);
}

// The copies hold thousands of .js files (documentation, python and JDK trees) that `eslint .`
// would try to lint in this working tree; they are rebuilt in a minute or two by the next run.
if (!values['keep-datasets']) {
  await rm(join(DATA_DIR, 'datasets'), { recursive: true, force: true });
  log('datasets removed (--keep-datasets keeps them for the next run)');
}

// ---------------------------------------------------------------- report

const TARGETS: Record<Scenario, number> = { first: 0.5, nochange: 0.5, change: 0.5, restore: 0.6 };
const SCENARIO_LABEL: Record<Scenario, string> = {
  first: 'first backup',
  nochange: 'backup, no changes',
  change: 'backup after changing 1 % of files',
  restore: 'restore (latest)',
};
const cols = TOOL_LIST;
const ratioCols = cols.filter((t) => t !== 'restic');
const hasRestic = cols.includes('restic');
const header = [
  'work',
  'target (coffer)',
  ...cols,
  ...(hasRestic ? ratioCols.map((t) => `${t}/restic`) : []),
  'target met',
];
const rows: string[][] = [];
const cpuRows: string[][] = [];
const med = (tree: string, tool: string, sc: Scenario, f: (s: Sample) => number) =>
  median((results.times[tree]?.[tool]?.[sc] ?? []).map(f));
for (const tree of TREES) {
  const treeLabel = `${tree} tree`;
  for (const sc of SCENARIOS) {
    const v = Object.fromEntries(cols.map((t) => [t, med(tree, t, sc, (s) => s.wallS)]));
    const ratio = (t: string) => v[t]! / v.restic!;
    rows.push([
      `${SCENARIO_LABEL[sc]}, ${treeLabel}`,
      `≤ ${TARGETS[sc]}× restic`,
      ...cols.map((t) => fmtS(v[t]!)),
      ...(hasRestic ? ratioCols.map((t) => fmtX(ratio(t))) : []),
      hasRestic && cols.includes('coffer') ? (ratio('coffer') <= TARGETS[sc] ? 'yes' : 'no') : '–',
    ]);
    cpuRows.push([
      `${SCENARIO_LABEL[sc]}, ${treeLabel}`,
      ...cols.map((t) => fmtS(med(tree, t, sc, (s) => s.userS + s.sysS))),
      ...cols.map((t) => {
        const wall = med(tree, t, sc, (s) => s.wallS);
        return `${(med(tree, t, sc, (s) => s.userS + s.sysS) / wall).toFixed(2)}`;
      }),
    ]);
  }
  const sz = Object.fromEntries(cols.map((t) => [t, median(results.sizes[tree]?.[t] ?? [])]));
  rows.push([
    `repository size after first backup, ${treeLabel}`,
    '≤ 1× restic',
    ...cols.map((t) => fmtMB(sz[t]!)),
    ...(hasRestic ? ratioCols.map((t) => fmtX(sz[t]! / sz.restic!)) : []),
    hasRestic && cols.includes('coffer') ? (sz.coffer! <= sz.restic! ? 'yes' : 'no') : '–',
  ]);
  for (const sc of ['first', 'nochange', 'change'] as Scenario[]) {
    const r = Object.fromEntries(cols.map((t) => [t, med(tree, t, sc, (s) => s.maxRssBytes)]));
    rows.push([
      `peak RSS, ${SCENARIO_LABEL[sc]}, ${treeLabel}`,
      '≤ 150 MB',
      ...cols.map((t) => fmtMB(r[t]!)),
      ...(hasRestic ? ratioCols.map((t) => fmtX(r[t]! / r.restic!)) : []),
      cols.includes('coffer') ? (r.coffer! <= 150e6 ? 'yes' : 'no') : '–',
    ]);
  }
}

const date = new Date().toISOString().replace('T', ' ').slice(0, 16);
const wallMin = ((Date.now() - t0) / 60000).toFixed(1);
const ds = TREES.map((t) => {
  const m = manifests[t]!;
  const srcs = m.sources
    .map((s) =>
      s.present ? `${s.path} (${s.files} files, ${fmtMB(s.bytes)})` : `${s.path} (missing on this machine)`,
    )
    .join(', ');
  const ch = results.changes[t]?.[0];
  return (
    `  - **${t}**: ${m.files} files, ${fmtMB(m.bytes)}, ${m.symlinks} symlinks, ${m.dirs} directories` +
    `${m.skipped ? `, ${m.skipped} entries skipped (not file/dir/symlink, or unreadable)` : ''}; from ${srcs}` +
    `${SCALE < 1 ? ` — an even ${SCALE * 100} % sample by path hash` : ''}.` +
    `${ch ? ` The 1 % change rewrites 4 KiB in the middle of ${ch.files} files (${fmtMB(ch.bytes)} of files to re-read).` : ''}`
  );
}).join('\n');

const out: string[] = [];
out.push(SECTION, '');
out.push(
  `_Measured ${date} UTC with \`${COMMAND}\` (${wallMin} min wall time; scale ${SCALE}, ${roundsDone} round${roundsDone === 1 ? '' : 's'})._${stoppedEarly ? ` Note: ${stoppedEarly}.` : ''}`,
  '',
);
out.push(
  `- **Machine**: ${machine()}; load average at start ${loadStart.map((x) => x.toFixed(2)).join(' ')}, at end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}.`,
);
out.push(
  `- **Versions**: node ${versions.node}, coffer ${versions.coffer}, ${versions.restic}, ${versions.borg}.`,
);
out.push(
  `- **Method**: in each round, each tree is handled by ${cols.join(', then ')} in turn, the order rotating by one tool each round (alternation, so drift hits all alike): a fresh ` +
    'encrypted repository, first backup, no-change backup, 1 % of files changed and backed up (then changed back), restore of the ' +
    `latest backup into an empty directory${RESTORE_DIR ? ` under ${RESTORE_DIR}` : ' on the same disk'}. ` +
    'Warm cache (every file of the dataset is read again before each timed backup, because borg drops the files it reads from the page cache; `sync` before every timed command). ' +
    'Wall time is spawn to exit of the real CLI, including its start-up and key derivation; peak RSS and CPU time come from ' +
    '`/usr/bin/time -v` (the kernel\u2019s rusage of the process). Medians of the rounds. MB = 10^6 bytes.',
);
const dropped = droppedStartUpVariables();
out.push(
  '- **Settings** (each tool\u2019s defaults, encryption on): coffer — AES-256-GCM, zstd level 3, FastCDC 512 KiB/1 MiB/8 MiB, ' +
    '16 MiB packs; restic — repository v2, compression `auto` (zstd), AES-256-CTR + Poly1305; borg — `--encryption=repokey` ' +
    '(AES-256-CTR + HMAC-SHA256), compression lz4. Passwords from the environment. `sync` runs before each timed ' +
    'command, not inside it: each tool is charged for the fsyncs it does itself, and nothing else.' +
    (dropped.length > 0
      ? ` Run without ${dropped.map((k) => `\`${k}\``).join(', ')}, which this machine sets and no command here uses ` +
        '(Node parses the certificates it names at every start, about 50 ms; see `bench/engine-tools.ts`).'
      : ''),
);
out.push('- **Datasets** (copies under `bench/.data/`):', ds, '');
out.push(
  `### Results (medians of ${roundsDone} round${roundsDone === 1 ? '' : 's'})`,
  '',
  table(header, rows),
  '',
);
out.push(
  '### CPU time (user + sys, medians) and cores used (CPU time / wall time)',
  '',
  table(['work', ...cols.map((t) => `${t} CPU`), ...cols.map((t) => `${t} cores`)], cpuRows),
  '',
);
// Each restore by round: its system time tells which memory it wrote into (see the doc's
// "Writing into memory" section), which moves the restore rows more than either tool does.
const restoreRows: string[][] = [];
for (const tree of TREES) {
  const byTool = cols.map((t) => results.times[tree]?.[t]?.restore ?? []);
  const rounds = Math.max(0, ...byTool.map((samples) => samples.length));
  for (let r = 0; r < rounds; r++) {
    restoreRows.push([
      `${tree} tree, round ${r + 1}`,
      ...byTool.map((samples) => {
        const s = samples[r];
        return s ? `${fmtS(s.wallS)} / ${fmtS(s.sysS)}` : '–';
      }),
    ]);
  }
}
out.push(
  '### Restores by round (wall time / system time)',
  '',
  'A restore whose system time is several times the others\u2019 wrote into memory the host had taken back ' +
    '(see `bench/memory-write-cost.ts`): which restores meet it depends on what was freed in the minutes before.',
  '',
  table(['restore', ...cols], restoreRows),
  '',
);
out.push(
  '### Physical ceilings of this machine',
  '',
  table(
    ['what', 'throughput', 'note'],
    [
      ...ceilings.map((c) => [c.what, fmtRate(c.rate), c.note]),
      ...reads.map((r) => [
        `read the ${r.tree} dataset, cold cache`,
        r.cold === null ? 'not measured' : fmtRate(r.cold),
        r.cold === null ? coldNote : 'one file at a time, synchronous 4 MiB reads',
      ]),
      ...reads.map((r) => [
        `read the ${r.tree} dataset, warm cache`,
        fmtRate(r.warm),
        'one file at a time, synchronous 4 MiB reads',
      ]),
    ],
  ),
  '',
);
out.push('### Verification', '');
if (checks.length === 0) out.push('- coffer was not run: no vault to verify.');
for (const c of checks) {
  out.push(
    `- \`coffer check ${c.vault.split('/')[1]} --read-data\` (${c.vault}): **${c.ok ? 'ok' : 'FAILED'}** in ${fmtS(c.wallS)} — ${c.detail}`,
  );
}
out.push(
  results.restoreMismatches.length === 0
    ? '- Every restore had the dataset\u2019s number of files, bytes and symlinks.'
    : results.restoreMismatches.map((s) => `- restore mismatch: ${s}`).join('\n'),
);
const warned = Object.entries(results.times).flatMap(([tree, byTool]) =>
  Object.entries(byTool).flatMap(([tool, bySc]) =>
    Object.entries(bySc).flatMap(([sc, samples]) =>
      samples
        .filter((s) => s.warnings)
        .map((s) => `${tree} ${tool} ${sc}: exit ${s.exitCode}: ${s.warnings!.trim().slice(-300)}`),
    ),
  ),
);
for (const w of warned) out.push(`- warning: ${w.replace(/\n/g, ' ')}`);
for (const f of results.failures) out.push(`- **failed**: ${f}`);
out.push('');
if (profile) {
  out.push(
    `### Profile: one coffer first backup of the ${profile.tree} tree`,
    '',
    `\`node --cpu-prof bin/coffer.js backup ${profile.tree}\` (${fmtS(profile.wallS)} under the profiler; ` +
      `${(profile.totalMs / 1000).toFixed(1)} s sampled in ${profile.files.length} thread profile(s)). Self time:`,
    '',
    table(
      ['function', 'where', 'self', 'share'],
      profile.functions.map((e) => [
        `\`${e.name}\``,
        e.where ? `\`${e.where}\`` : '',
        `${(e.selfMs / 1000).toFixed(2)} s`,
        `${(e.share * 100).toFixed(1)} %`,
      ]),
    ),
    '',
    table(
      ['module', 'self', 'share'],
      profile.modules
        .slice(0, 8)
        .map((e) => [
          `\`${e.name}\``,
          `${(e.selfMs / 1000).toFixed(2)} s`,
          `${(e.share * 100).toFixed(1)} %`,
        ]),
    ),
    '',
  );
}
// Formatted as `npm run lint` (prettier --check) wants it, so the doc can take the section as is.
const section = await prettier.format(out.join('\n'), {
  ...((await prettier.resolveConfig(DOC)) ?? {}),
  parser: 'markdown',
});

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
writeFileSync(join(DATA_DIR, `results-${stamp}.md`), section + '\n');
writeFileSync(
  join(DATA_DIR, `results-${stamp}.json`),
  JSON.stringify(
    { command: COMMAND, versions, machine: machine(), reads, ceilings, results, checks, profile },
    null,
    2,
  ),
);
process.stdout.write(section + '\n');
log(`results saved in ${join(DATA_DIR, `results-${stamp}.md`)} and .json`);

if (values['write-doc']) {
  // Re-read right before writing and replace only this section: others edit other sections.
  const current = existsSync(DOC) ? readFileSync(DOC, 'utf8') : '# Benchmarks\n';
  const start = current.indexOf(`\n${SECTION}\n`);
  let next: string;
  if (start < 0) next = `${current.trimEnd()}\n\n${section.trimEnd()}\n`;
  else {
    const after = current.indexOf('\n## ', start + 1);
    next = current.slice(0, start + 1) + section.trimEnd() + '\n' + (after < 0 ? '' : current.slice(after));
  }
  writeFileSync(DOC, next);
  log(`updated ${DOC} (section "${SECTION}" only)`);
}
if (checks.some((c) => !c.ok) || results.failures.length > 0) process.exitCode = 1;
