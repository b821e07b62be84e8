/**
 * A test world: a catalog (SQLite or PostgreSQL), a vault password, temp directories, the CLI
 * to act through, and a direct read of the catalog to observe what the processes did.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCatalog } from '../../src/catalog/connect.js';
import { CatalogStore } from '../../src/catalog/store.js';
import { systemClock } from '../../src/jobs/clock.js';
import { createTestCatalog, type TestCatalog } from './catalogs.js';
import { coffer, type CliResult } from './cli.js';

export interface World {
  tc: TestCatalog;
  root: string;
  env: Record<string, string>;
  /** Observes the catalog directly (after a reap, as every CLI command does first). */
  store: CatalogStore;
  run(args: string[], extraEnv?: Record<string, string>): Promise<CliResult>;
  /** Runs a command that must succeed. */
  ok(args: string[], extraEnv?: Record<string, string>): Promise<CliResult>;
  close(): Promise<void>;
}

export async function createWorld(
  dialect: 'sqlite' | 'postgres',
  extraEnv: Record<string, string> = {},
): Promise<World> {
  const tc = await createTestCatalog(dialect);
  const root = await mkdtemp(join(tmpdir(), 'coffer-world-'));
  const env = { ...tc.env, COFFER_PASSWORD: 'correct horse battery staple', ...extraEnv };
  // The world's own catalog handle is opened lazily, after the first CLI call migrated it.
  let store: CatalogStore | null = null;
  let closeCatalog: (() => Promise<void>) | null = null;
  const run = (args: string[], more: Record<string, string> = {}) => coffer(args, { ...env, ...more });
  const world: World = {
    tc,
    root,
    env,
    get store(): CatalogStore {
      if (!store) throw new Error('call world.ready() first');
      return store;
    },
    run,
    async ok(args, more = {}) {
      const r = await run(args, more);
      if (r.code !== 0)
        throw new Error(`coffer ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      return r;
    },
    async close() {
      await closeCatalog?.();
      await tc.cleanup();
      await rm(root, { recursive: true, force: true });
    },
  };
  await world.ok(['vault', 'list']);
  const catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
  store = new CatalogStore(catalog, systemClock);
  closeCatalog = () => catalog.close();
  return world;
}

/** A directory of incompressible files (so a rate-limited backup takes a predictable time). */
export async function makeRandomTree(dir: string, files: number, bytesEach: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++)
    await writeFile(join(dir, `file-${String(i).padStart(4, '0')}.bin`), randomBytes(bytesEach));
}
