/**
 * What the HTTP benchmarks share: a fresh catalog (an SQLite home, or a new PostgreSQL database
 * that is dropped afterwards), the app layer opened on it in-process for fast set-up, and real
 * `coffer serve` / `coffer worker` child processes against it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../../src/app/config.js';
import { openApp, type AppContext } from '../../src/app/context.js';
import { addItem } from '../../src/app/vaults.js';

/** bin/coffer.js, from dist/bench/lib/ three levels up. */
export const COFFER_BIN = fileURLToPath(new URL('../../../bin/coffer.js', import.meta.url));
const DEFAULT_PG = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchCatalog {
  dialect: 'sqlite' | 'postgres';
  home: string;
  /** The environment for `coffer` child processes: this catalog and nothing of the parent's. */
  env: NodeJS.ProcessEnv;
  /** The app layer on the same catalog, in this process (set-up only, never timed). */
  app: AppContext;
  close(): Promise<void>;
}

/**
 * PostgreSQL when `--pg` is given or COFFER_BENCH_DATABASE_URL is set (an admin URL: a fresh
 * database is created next to it and dropped after), SQLite otherwise.
 */
export async function createBenchCatalog(
  usePg: boolean,
  extraEnv: Record<string, string> = {},
): Promise<BenchCatalog> {
  const adminUrl = process.env.COFFER_BENCH_DATABASE_URL || (usePg ? DEFAULT_PG : undefined);
  const dialect = adminUrl ? 'postgres' : 'sqlite';
  const home = await mkdtemp(join(tmpdir(), `coffer-bench-${dialect}-`));
  let databaseUrl: string | undefined;
  let dbName: string | undefined;
  if (adminUrl) {
    dbName = `coffer_bench_${randomBytes(6).toString('hex')}`;
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    await client.query(`create database ${dbName}`);
    await client.end();
    const url = new URL(adminUrl);
    url.pathname = `/${dbName}`;
    databaseUrl = url.toString();
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('COFFER_')) delete env[k];
  Object.assign(env, {
    COFFER_HOME: home,
    COFFER_PASSWORD: 'bench-password',
    ...(databaseUrl ? { COFFER_DATABASE_URL: databaseUrl } : {}),
    ...extraEnv,
  });
  const app = await openApp(loadConfig(env));
  return {
    dialect,
    home,
    env,
    app,
    async close() {
      await app.close();
      if (adminUrl && dbName) {
        const c = new pg.Client({ connectionString: adminUrl });
        await c.connect();
        await c.query(`drop database if exists ${dbName} with (force)`);
        await c.end();
      }
      await rm(home, { recursive: true, force: true });
    },
  };
}

/**
 * Protected items through the app layer (name checks, canonical source path, audit row), each
 * on its own empty directory: a source path belongs to one item only.
 */
export async function addItems(
  bc: BenchCatalog,
  vault: string,
  names: string[],
  parallel = 8,
): Promise<void> {
  const root = join(bc.home, 'sources');
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < names.length) {
        const name = names[next++]!;
        const dir = join(root, name);
        await mkdir(dir, { recursive: true });
        await addItem(bc.app, { name, vaultRef: vault, path: dir }, 'bench');
      }
    }),
  );
}

export interface CofferProcess {
  child: ChildProcess;
  /** Where its stderr (the JSON logs) goes. */
  logFile: string;
  stop(): Promise<void>;
}

function startCoffer(bc: BenchCatalog, args: string[], label: string, nodeArgs: string[]): CofferProcess {
  const logFile = join(bc.home, `${label}-${Date.now()}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...nodeArgs, COFFER_BIN, ...args], {
    env: bc.env,
    stdio: ['ignore', 'pipe', fd],
  });
  closeSync(fd);
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    child,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
      await closed;
      clearTimeout(timer);
    },
  };
}

export function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** `coffer serve --port 0 ARGS`; resolves with the address it prints once listening. */
export async function startServe(
  bc: BenchCatalog,
  args: string[],
  nodeArgs: string[] = [],
): Promise<CofferProcess & { url: string }> {
  const proc = startCoffer(bc, ['serve', '--port', '0', ...args], 'serve', nodeArgs);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('coffer serve did not start within 30 s')), 30_000);
    proc.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /coffer serve listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`coffer serve exited ${code} before listening:\n${logTail(proc.logFile)}`));
    });
  });
  proc.child.stdout!.resume();
  return { ...proc, url };
}

/** `coffer worker ARGS`, the worker-only process of a multi-node set-up. */
export function startWorker(bc: BenchCatalog, args: string[]): CofferProcess {
  const proc = startCoffer(bc, ['worker', ...args], 'worker', []);
  proc.child.stdout!.resume();
  return proc;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  n: number;
}

/** Nearest-rank percentiles. */
export function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.max(0, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s[s.length - 1] ?? NaN, n: s.length };
}

export { median } from './stats.js';

export const fmtMs = (x: number): string => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
/**
 * CPU time (user + system) a process has used so far, from /proc (Linux): the server's cost per
 * request, which unlike wall time does not depend on what else the machine is doing.
 */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at field 3; utime and stime
  // are fields 14 and 15, in clock ticks (100 per second on Linux).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export const nowMs = (): number => performance.timeOrigin + performance.now();

export function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}
