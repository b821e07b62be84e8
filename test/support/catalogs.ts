/**
 * The catalogs every catalog-facing test runs against: the embedded SQLite store always, and a
 * real PostgreSQL server when one is reachable (COFFER_TEST_DATABASE_URL, or the local default).
 * In CI a missing PostgreSQL fails the run instead of silently skipping half the suite.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface TestCatalog {
  dialect: 'sqlite' | 'postgres';
  /** COFFER_HOME for this test (always set: vault passwords, temp files live there). */
  home: string;
  /** COFFER_DATABASE_URL for this test, or undefined for SQLite. */
  databaseUrl: string | undefined;
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

const DEFAULT_PG = 'postgres://postgres@127.0.0.1:5432/postgres';
let pgReachable: Promise<string | null> | null = null;

async function adminUrl(): Promise<string | null> {
  pgReachable ??= (async () => {
    const url = process.env.COFFER_TEST_DATABASE_URL || DEFAULT_PG;
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.end();
      return url;
    } catch (err) {
      if (process.env.CI || process.env.COFFER_TEST_DATABASE_URL) {
        throw new Error(`PostgreSQL at ${url} is required for the test suite: ${(err as Error).message}`, {
          cause: err,
        });
      }
      return null;
    }
  })();
  return pgReachable;
}

/** The dialects to run; PostgreSQL is listed only when a server answers. */
export async function dialects(): Promise<('sqlite' | 'postgres')[]> {
  return (await adminUrl()) ? ['sqlite', 'postgres'] : ['sqlite'];
}

export async function createTestCatalog(dialect: 'sqlite' | 'postgres'): Promise<TestCatalog> {
  const home = await mkdtemp(join(tmpdir(), `coffer-test-${dialect}-`));
  if (dialect === 'sqlite') {
    return {
      dialect,
      home,
      databaseUrl: undefined,
      env: { COFFER_HOME: home },
      cleanup: () => rm(home, { recursive: true, force: true }),
    };
  }
  const admin = (await adminUrl())!;
  const name = `coffer_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  return {
    dialect,
    home,
    databaseUrl,
    env: { COFFER_HOME: home, COFFER_DATABASE_URL: databaseUrl },
    async cleanup() {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
      await rm(home, { recursive: true, force: true });
    },
  };
}
