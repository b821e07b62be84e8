/** Shared set-up for the API benchmarks: a catalog with items, real server and client processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCatalog, type Catalog } from '../src/catalog/connect.js';
import { migrate } from '../src/catalog/migrations.js';
import { CatalogStore } from '../src/catalog/store.js';
import { systemClock } from '../src/jobs/clock.js';
import { newId } from '../src/jobs/ids.js';
import { createTestCatalog, type TestCatalog } from '../test/support/catalogs.js';
import { COFFER_BIN } from '../test/support/cli.js';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

export interface Bench {
  tc: TestCatalog;
  catalog: Catalog;
  store: CatalogStore;
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export async function benchCatalog(
  dialect: 'sqlite' | 'postgres',
  extraEnv: Record<string, string> = {},
): Promise<Bench> {
  const tc = await createTestCatalog(dialect);
  const catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
  await migrate(catalog);
  const store = new CatalogStore(catalog, systemClock);
  return {
    tc,
    catalog,
    store,
    env: {
      ...process.env,
      ...tc.env,
      COFFER_PASSWORD: 'bench-password',
      COFFER_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    async close() {
      await catalog.close();
      await tc.cleanup();
    },
  };
}

/** Items `item-0` … `item-(n-1)` in one vault (catalog rows only: admission never reads data). */
export async function bulkItems(b: Bench, n: number, vaultId: string): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    const now = Date.now();
    const rows = Array.from({ length: Math.min(500, n - i) }, (_, k) => ({
      id: newId('i', now),
      name: `item-${i + k}`,
      vault_id: vaultId,
      source_path: `/bench/item-${i + k}`,
      policy_id: null,
      previous_vault_id: null,
      created_at: now,
      updated_at: now,
    }));
    await b.catalog.db.insertInto('items').values(rows).execute();
  }
}

export async function startServe(
  env: NodeJS.ProcessEnv,
  args: string[],
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [COFFER_BIN, 'serve', '--port', '0', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`coffer serve exited ${code}`)));
  });
  return { child, url };
}

export async function stop(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('close', r));
}

/** Starts client processes, releases them together, and collects their JSON reports. */
export async function runClients<T>(script: string, argsPerClient: string[][]): Promise<T[]> {
  const children = argsPerClient.map((args) =>
    spawn(process.execPath, [join(BENCH_DIR, script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  const outputs = children.map(
    (c) =>
      new Promise<string>((resolve) => {
        let out = '';
        c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        c.on('close', () => resolve(out));
      }),
  );
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          const on = (d: Buffer) => {
            if (d.toString().includes('ready')) {
              c.stdout!.off('data', on);
              resolve();
            }
          };
          c.stdout!.on('data', on);
        }),
    ),
  );
  for (const c of children) c.stdin!.end('go\n');
  return (await Promise.all(outputs)).map((o) => JSON.parse(o.trim().split('\n').pop()!) as T);
}

export function percentiles(values: number[]): { p50: number; p95: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s[s.length - 1] ?? NaN };
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const ms = (x: number): string => `${x.toFixed(1)} ms`;
