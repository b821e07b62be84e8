/**
 * The three backup programs as the benchmark drives them, each through its real command line,
 * with encryption on and its own default compression:
 * - coffer: `node bin/coffer.js` (AES-256-GCM, zstd level 3), catalog in a temporary COFFER_HOME;
 * - restic: repository format 2, compression `auto` (its default: zstd, fast level), AES-256-CTR + Poly1305;
 * - borg 1.2: `--encryption=repokey` (AES-256-CTR + HMAC-SHA256), compression lz4 (its default).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dirBytes } from './engine-datasets.js';
import { type Measure, run, timed } from './engine-run.js';

export type ToolName = 'coffer' | 'restic' | 'borg';
export const TOOLS: ToolName[] = ['coffer', 'restic', 'borg'];

/** bin/coffer.js, from dist/bench/ two levels up. */
export const COFFER_BIN = fileURLToPath(new URL('../../bin/coffer.js', import.meta.url));
export const PASSWORD = 'engine-bench-password';

export interface ToolRepo {
  readonly tool: ToolName;
  /** The repository directory (its size is the vault size). */
  readonly repo: string;
  init(): Promise<void>;
  backup(tag: string): Promise<Measure>;
  /** Restores the latest backup into `target` (an empty directory). */
  restore(target: string): Promise<Measure>;
  size(): Promise<number>;
  /** Deletes the repository and caches (coffer's vaults are kept for `check --read-data`). */
  discard(): Promise<void>;
}

/**
 * Variables a tool's start-up pays for although no benchmark command uses them. Node reads and
 * parses NODE_EXTRA_CA_CERTS (a file of extra TLS roots) at every start, before any script runs:
 * this sandbox points it at the whole system bundle (144 certificates) for its proxy, which cost
 * each `node` process about 50 ms (`node -e 0`: 0.08 s with it, 0.02-0.03 s without), a tenth of
 * a no-change backup. No command here makes a TLS connection, and restic and borg never read it.
 */
const START_UP_ONLY = ['NODE_EXTRA_CA_CERTS'];

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('COFFER_') || k.startsWith('RESTIC_') || k.startsWith('BORG_')) delete env[k];
  }
  for (const k of START_UP_ONLY) delete env[k];
  return env;
}

/** The START_UP_ONLY variables this run's environment had set, which the tools run without. */
export function droppedStartUpVariables(): string[] {
  return START_UP_ONLY.filter((k) => process.env[k] !== undefined);
}

export function cofferEnv(home: string): NodeJS.ProcessEnv {
  return { ...cleanEnv(), COFFER_HOME: home, COFFER_PASSWORD: PASSWORD };
}

/** Parses a `--json` job and insists it completed. */
export function completedJob(m: Measure, what: string): Record<string, unknown> {
  let job: Record<string, unknown>;
  try {
    job = JSON.parse(m.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`${what}: expected JSON, got:\n${m.stdout.slice(-2000)}\n${m.stderr.slice(-2000)}`);
  }
  if (job.state !== 'completed' && job.state !== 'completed_with_warnings') {
    throw new Error(`${what}: job ended ${String(job.state)}: ${JSON.stringify(job.error)}`);
  }
  return job;
}

export function makeRepo(
  tool: ToolName,
  o: { work: string; tree: string; source: string; timeFile: string },
): ToolRepo {
  const { work, tree, source, timeFile } = o;
  if (tool === 'coffer') {
    const home = join(work, 'coffer-home');
    const repo = join(work, `coffer-vault-${tree}`);
    const env = cofferEnv(home);
    const coffer = (args: string[]) => timed(process.execPath, [COFFER_BIN, ...args], { env, timeFile });
    return {
      tool,
      repo,
      async init() {
        await run(process.execPath, [COFFER_BIN, 'vault', 'create', `bench-${tree}`, '--path', repo], {
          env,
        });
        await run(
          process.execPath,
          [COFFER_BIN, 'item', 'add', tree, '--vault', `bench-${tree}`, '--path', source],
          {
            env,
          },
        );
      },
      async backup() {
        const m = await coffer(['backup', tree, '--json']);
        completedJob(m, `coffer backup ${tree}`);
        return m;
      },
      async restore(target) {
        const m = await coffer(['restore', tree, '--target', target, '--json']);
        completedJob(m, `coffer restore ${tree}`);
        return m;
      },
      size: () => dirBytes(repo),
      async discard() {
        // kept: every coffer vault is verified with `coffer check --read-data` after the run
      },
    };
  }
  if (tool === 'restic') {
    const repo = join(work, `restic-repo-${tree}`);
    const cache = join(work, `restic-cache-${tree}`);
    const env = {
      ...cleanEnv(),
      RESTIC_REPOSITORY: repo,
      RESTIC_PASSWORD: PASSWORD,
      RESTIC_CACHE_DIR: cache,
    };
    return {
      tool,
      repo,
      async init() {
        await run('restic', ['init'], { env });
      },
      // exit 3: some source files could not be read (the snapshot is still made); recorded, not hidden
      backup: () =>
        timed('restic', ['backup', '--host', 'bench', source], { env, timeFile, okCodes: [0, 3] }),
      restore: (target) => timed('restic', ['restore', 'latest', '--target', target], { env, timeFile }),
      size: () => dirBytes(repo),
      async discard() {
        await rm(repo, { recursive: true, force: true });
        await rm(cache, { recursive: true, force: true });
      },
    };
  }
  const repo = join(work, `borg-repo-${tree}`);
  const base = join(work, `borg-base-${tree}`);
  const env = {
    ...cleanEnv(),
    BORG_REPO: repo,
    BORG_PASSPHRASE: PASSWORD,
    BORG_BASE_DIR: base,
    BORG_DISPLAY_PASSPHRASE: 'no',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  };
  let last = '';
  return {
    tool,
    repo,
    async init() {
      await run('borg', ['init', '--encryption=repokey'], { env });
    },
    async backup(tag) {
      last = tag;
      // exit 1: warnings (e.g. a file changed while read); recorded in stderr, the archive is made
      return timed('borg', ['create', `::${tag}`, source], { env, timeFile, okCodes: [0, 1] });
    },
    restore: (target) => timed('borg', ['extract', `::${last}`], { env, timeFile, cwd: target }),
    size: () => dirBytes(repo),
    async discard() {
      await rm(repo, { recursive: true, force: true });
      await rm(base, { recursive: true, force: true });
    },
  };
}

export async function toolVersions(): Promise<Record<string, string>> {
  const v = async (cmd: string, args: string[]) => {
    try {
      return (await run(cmd, args)).trim().split('\n')[0] ?? '';
    } catch (err) {
      return `not available (${(err as Error).message.split('\n')[0]})`;
    }
  };
  return {
    node: process.version,
    coffer: (await v(process.execPath, [COFFER_BIN, '--version'])).trim(),
    restic: await v('restic', ['version']),
    borg: await v('borg', ['--version']),
  };
}
