/**
 * Shared ground for multi-node fault tests: a PostgreSQL catalog, a vault, items with real
 * source trees, an in-process AppContext (the same use cases the CLI runs) to trigger and
 * observe, and the checks every fault test ends with.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { loadConfig } from '../../src/app/config.js';
import { openApp, type AppContext } from '../../src/app/context.js';
import { openVaultRepository } from '../../src/app/vaults.js';
import type { Job } from '../../src/jobs/job.js';
import { coffer, type CliResult } from './cli.js';
import { manifest, manifestDiff } from './trees.js';

export interface Fleet {
  root: string;
  vaultDir: string;
  env: Record<string, string>;
  app: AppContext;
  run(args: string[], extraEnv?: Record<string, string>): Promise<CliResult>;
  ok(args: string[], extraEnv?: Record<string, string>): Promise<CliResult>;
  close(): Promise<void>;
}

/** `env` must carry COFFER_HOME and COFFER_DATABASE_URL (see createTestCatalog). */
export async function createFleet(
  env: Record<string, string>,
  opts: { vaultDir?: string; leaseSeconds?: number } = {},
): Promise<Fleet> {
  const root = await mkdtemp(join(tmpdir(), 'coffer-fleet-'));
  const fullEnv: Record<string, string> = {
    COFFER_PASSWORD: 'fleet password',
    COFFER_LEASE_SECONDS: String(opts.leaseSeconds ?? 2),
    ...env,
  };
  const vaultDir = opts.vaultDir ?? join(root, 'vault');
  const run = (args: string[], more: Record<string, string> = {}) => coffer(args, { ...fullEnv, ...more });
  const ok = async (args: string[], more: Record<string, string> = {}) => {
    const r = await run(args, more);
    if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  await ok(['vault', 'create', 'main', '--path', vaultDir]);
  const app = await openApp(loadConfig(fullEnv));
  return {
    root,
    vaultDir,
    env: fullEnv,
    app,
    run,
    ok,
    async close() {
      await app.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export async function addItemWithTree(
  f: Fleet,
  name: string,
  files: number,
  bytesEach: number,
): Promise<{ id: string; dir: string }> {
  const dir = join(f.root, 'src', name);
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++)
    await writeFile(join(dir, `base-${String(i).padStart(3, '0')}.bin`), randomBytes(bytesEach));
  await f.ok(['item', 'add', name, '--vault', 'main', '--path', dir]);
  return { id: (await f.app.store.getItem(name)).id, dir };
}

/** Items holding more than one active exclusive job, read in one statement (one instant). */
export async function doubleActiveItems(app: AppContext): Promise<{ item_id: string; n: number }[]> {
  const r = await sql<{ item_id: string; n: number }>`
    select item_id, count(*)::int as n from jobs
    where operation in ('backup', 'delete-data') and state in ('queued', 'in_progress', 'cancelling')
    group by item_id having count(*) > 1`.execute(app.catalog.db);
  return r.rows;
}

export async function allJobs(app: AppContext): Promise<Job[]> {
  return app.store.listJobs({ limit: 100_000 });
}

export function isActiveJob(j: Job): boolean {
  return j.state === 'queued' || j.state === 'in_progress' || j.state === 'cancelling';
}

/** Active jobs whose lease has run out (a reaper has not failed them yet). */
export async function activeWithoutLiveLease(app: AppContext): Promise<Job[]> {
  const now = Date.now();
  return (await allJobs(app)).filter(
    (j) =>
      (j.state === 'in_progress' || j.state === 'cancelling') &&
      (j.leaseExpiresAt === null || j.leaseExpiresAt < now),
  );
}

/** Restores a recovery point in-process (the engine the worker uses) and compares it to `expected`. */
export async function restoreMatches(
  f: Fleet,
  pointId: string,
  expected: Map<string, string>,
): Promise<string[]> {
  const point = await f.app.store.getPoint(pointId);
  const repo = await openVaultRepository(f.app, await f.app.store.getVault(point.vaultId));
  const target = await mkdtemp(join(f.root, 'restore-'));
  try {
    await repo.restore({ snapshotId: point.id, target });
    return manifestDiff(expected, await manifest(target));
  } finally {
    await rm(target, { recursive: true, force: true });
  }
}

/** Snapshot files in the vault's storage: committed (visible) and pending. */
export async function storedSnapshots(vaultDir: string): Promise<{ committed: string[]; pending: string[] }> {
  const list = async (d: string) =>
    (await readdir(join(vaultDir, d)).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
  return { committed: await list('snapshots'), pending: await list('pending') };
}

/** `coffer check main --read-data` through the CLI: exit 0 and no errors. */
export async function assertVaultClean(f: Fleet): Promise<void> {
  const r = await f.run(['check', 'main', '--read-data']);
  assert.equal(r.code, 0, `check --read-data failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /no errors were found/);
}

/** Polls with a deadline until fn returns a value other than false or a string (a reason it is not there yet). */
export async function until<T>(
  what: string,
  fn: () => Promise<T | false | string>,
  timeoutMs: number,
  everyMs = 100,
): Promise<Exclude<T, false | string>> {
  const started = Date.now();
  let last = '';
  for (;;) {
    const v = await fn();
    if (v !== false && typeof v !== 'string') return v as Exclude<T, false | string>;
    if (typeof v === 'string') last = v;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
