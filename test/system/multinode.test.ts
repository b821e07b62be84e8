/**
 * The catalog under many processes, as a multi-node deployment runs it: concurrent claimers
 * (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite) claim every queued job
 * exactly once, and processes that migrate a fresh catalog at the same instant apply each
 * migration exactly once between them.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openCatalog, type Catalog } from '../../src/catalog/connect.js';
import { MIGRATION_NAMES, migrate } from '../../src/catalog/migrations.js';
import { CatalogStore } from '../../src/catalog/store.js';
import { systemClock } from '../../src/jobs/clock.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';
import { REPO_ROOT } from '../support/cli.js';

const FIXTURES = join(REPO_ROOT, 'dist', 'test', 'system', 'fixtures');

/** Starts PROCS copies of a fixture, waits until each says ready, releases them at once. */
async function race<T>(
  script: string,
  args: string[],
  env: Record<string, string>,
  procs: number,
): Promise<T[]> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base.COFFER_DATABASE_URL;
  delete base.COFFER_HOME;
  const children: ChildProcessWithoutNullStreams[] = Array.from({ length: procs }, () =>
    spawn(process.execPath, [join(FIXTURES, script), ...args], { env: { ...base, ...env } }),
  );
  const outputs = children.map(
    (c) =>
      new Promise<{ out: string; err: string; code: number | null }>((resolve) => {
        let out = '';
        let err = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('close', (code) => resolve({ out, err, code }));
      }),
  );
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          let out = '';
          const onData = (d: Buffer) => {
            out += d.toString();
            if (out.includes('ready\n')) {
              c.stdout.off('data', onData);
              resolve();
            }
          };
          c.stdout.on('data', onData);
          c.once('close', (code) => reject(new Error(`${script} exited ${code} before it was ready`)));
        }),
    ),
  );
  for (const c of children) c.stdin.end('go\n');
  const results = await Promise.all(outputs);
  return results.map((r) => {
    assert.equal(r.code, 0, `${script} failed:\n${r.err}`);
    return JSON.parse(r.out.trim().split('\n').pop()!) as T;
  });
}

for (const dialect of await dialects()) {
  describe(`many processes on one catalog (${dialect})`, () => {
    let tc: TestCatalog;
    let catalog: Catalog;
    let store: CatalogStore;

    before(async () => {
      tc = await createTestCatalog(dialect);
    });
    after(async () => {
      await catalog?.close();
      await tc.cleanup();
    });

    test('processes migrating a fresh catalog at once apply each migration exactly once', async () => {
      const results = await race<{ applied: string[] }>('migrate.js', [], tc.env, 8);
      const applied = results.flatMap((r) => r.applied);
      // Whichever process took the lock first applied everything; the others found it done.
      assert.deepEqual([...applied].sort(), [...MIGRATION_NAMES].sort(), 'each migration applied once');
      assert.equal(results.filter((r) => r.applied.length > 0).length, 1, 'by exactly one process');
      catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
      const rows = await catalog.db.selectFrom('schema_migrations').select('name').execute();
      assert.deepEqual(rows.map((r) => r.name).sort(), [...MIGRATION_NAMES].sort());
      assert.deepEqual(await migrate(catalog), [], 'nothing left to apply');
      store = new CatalogStore(catalog, systemClock);
    });

    test('concurrent claimers in 6 processes claim each of 300 queued jobs exactly once', async () => {
      const JOBS = 300;
      const ids = new Set<string>();
      for (let i = 0; i < JOBS; i++) {
        const a = await store.admit({
          operation: 'check',
          itemId: null,
          vaultId: 'v_race',
          trigger: 'on-demand',
        });
        ids.add(a.job.id);
      }
      const results = await race<{ claimed: string[] }>('claimer.js', ['4'], tc.env, 6);
      const claimed = results.flatMap((r) => r.claimed);
      assert.equal(claimed.length, JOBS, 'as many claims as jobs');
      assert.equal(new Set(claimed).size, JOBS, 'no job claimed twice');
      assert.deepEqual(new Set(claimed), ids, 'every queued job claimed');
      assert.ok(
        results.filter((r) => r.claimed.length > 0).length >= 2,
        `claims spread over processes: ${results.map((r) => r.claimed.length).join(', ')}`,
      );
      // The catalog agrees: one claim event and one lease owner per job.
      const events = await catalog.db
        .selectFrom('job_events')
        .select(['job_id'])
        .where('state', '=', 'in_progress')
        .execute();
      assert.equal(events.length, JOBS);
      assert.equal(new Set(events.map((e) => e.job_id)).size, JOBS);
      const left = await catalog.db
        .selectFrom('jobs')
        .select('id')
        .where('state', '!=', 'in_progress')
        .execute();
      assert.deepEqual(left, [], 'no job left queued');
    });
  });
}
