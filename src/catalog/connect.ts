/**
 * Opens the catalog: embedded SQLite under COFFER_HOME by default, PostgreSQL when a
 * postgres:// URL is given. Everything above this file sees one Kysely<Database>.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type SqliteDatabase } from 'kysely';
import type pg from 'pg';
import { CofferError } from '../errors/coffer-error.js';
import { groupCommitWriter } from './group-commit.js';
import { NOTIFY_CHANNEL, postgresNotices, type CatalogNotices } from './notify.js';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Catalog {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** Where the catalog lives, for messages (never includes a password). */
  readonly description: string;
  /**
   * Runs `fn` in a transaction that holds the write lock from its first statement, so
   * read-then-write sequences inside it are atomic across processes.
   */
  writeTx<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Job notices (LISTEN/NOTIFY) on PostgreSQL; null on SQLite, where workers poll. The listening
   * connection is opened on the first subscription and is not part of the pool.
   */
  readonly notices: CatalogNotices | null;
  close(): Promise<void>;
}

export interface CatalogOptions {
  home: string;
  databaseUrl?: string | undefined;
  /** PostgreSQL pool size per process (the notice listener uses one more connection). */
  poolSize?: number | undefined;
}

/** Connections per process to PostgreSQL when neither --db-pool-size nor COFFER_DB_POOL_SIZE says. */
export const DEFAULT_DB_POOL_SIZE = 10;

/**
 * The pg driver, loaded only when a PostgreSQL catalog is opened: the embedded default never
 * pays its memory.
 */
async function loadPg(): Promise<typeof pg> {
  const { default: driver } = await import('pg');
  // int8 columns (epoch milliseconds, counters) come back from pg as strings by default; every
  // value coffer keeps in them fits in a double.
  driver.types.setTypeParser(20, (v: string) => Number(v));
  return driver;
}

export async function openCatalog(opts: CatalogOptions): Promise<Catalog> {
  const url = opts.databaseUrl?.trim();
  if (url) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      throw new CofferError(
        'InvalidRequest',
        'COFFER_DATABASE_URL must start with postgres:// or postgresql://',
        {
          field: 'COFFER_DATABASE_URL',
        },
      );
    }
    return openPostgres(url, opts.poolSize ?? DEFAULT_DB_POOL_SIZE);
  }
  return await openSqlite(opts.home);
}

/** How long SQLite waits for another process's lock, and the budget for the WAL conversion. */
const SQLITE_BUSY_MS = 15_000;

async function openSqlite(home: string): Promise<Catalog> {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const file = join(home, 'catalog.db');
  let database: BetterSqlite3.Database;
  try {
    // `timeout` is SQLite's busy timeout: writers from other processes wait for the lock.
    database = new BetterSqlite3(file, { timeout: SQLITE_BUSY_MS });
    await useWriteAheadLog(database);
    database.pragma('synchronous = NORMAL');
    database.pragma('foreign_keys = ON');
  } catch (err) {
    throw new CofferError(
      'CatalogUnavailable',
      `cannot open the catalog at ${file}: ${(err as Error).message}`,
      {
        path: file,
      },
    );
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  return {
    db,
    dialect: 'sqlite',
    description: file,
    // Concurrent write transactions share one COMMIT (see group-commit.ts); each still runs
    // alone under the write lock, taken up front with BEGIN IMMEDIATE.
    writeTx: groupCommitWriter(db),
    notices: null,
    close: () => db.destroy(),
  };
}

/**
 * Switches a catalog file to write-ahead logging. WAL is a property of the file, so only the
 * first open of a fresh catalog converts it; the conversion needs the file to itself and SQLite
 * does not run the busy handler for it, so processes that open a fresh catalog at the same
 * moment (a fleet of workers, migrations racing) get "database is locked" at once. Those wait
 * and try again within the busy budget; one that finds another already converted it is done.
 */
async function useWriteAheadLog(database: BetterSqlite3.Database): Promise<void> {
  const deadline = Date.now() + SQLITE_BUSY_MS;
  for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
    try {
      if (database.pragma('journal_mode', { simple: true }) === 'wal') return;
      if (database.pragma('journal_mode = WAL', { simple: true }) === 'wal') return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
    }
    if (Date.now() >= deadline) throw new Error('the catalog file could not be switched to WAL mode');
    await sleep(pause + Math.random() * pause);
  }
}

/**
 * Kysely's SQLite driver prepares every statement anew; preparing was the largest single cost
 * of an admission (profiled). Prepared statements are reusable, so keep the most recent ones.
 */
function withStatementCache(database: BetterSqlite3.Database, size = 512): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (stmt) {
        cache.delete(sql);
      } else {
        stmt = database.prepare(sql);
        if (cache.size >= size) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, stmt);
      return stmt;
    },
    close() {
      database.close();
    },
  };
}

async function openPostgres(url: string, poolSize: number): Promise<Catalog> {
  // A loaded server can take seconds to accept a connection; 30 s before giving up.
  const driver = await loadPg();
  const pool = new driver.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 30_000 });
  // A client that loses its server must not crash the process; the next query reports it. The
  // pool's own handler covers only idle clients: a client checked out between two queries of a
  // transaction (a lease renewal, a commit) emits 'error' on itself, and an 'error' event with
  // no listener kills a Node process (seen: PostgreSQL stopped -m immediate mid-backup).
  pool.on('error', () => undefined);
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const safeUrl = url.replace(/\/\/[^@/]*@/, '//***@');
  try {
    // "Too many clients" and "the database system is starting up" pass: many processes that
    // start at once (a fleet of workers, a burst of CLI calls) wait their turn instead of failing.
    for (let attempt = 1; ; attempt++) {
      try {
        await sql`select 1`.execute(db);
        break;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (attempt >= 20 || (code !== '53300' && code !== '57P03')) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt + Math.random() * 200));
      }
    }
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw new CofferError(
      'CatalogUnavailable',
      `cannot reach PostgreSQL at ${safeUrl}: ${(err as Error).message}`,
      {
        database: safeUrl,
      },
    );
  }
  const notices = postgresNotices(url, driver, async (payload) => {
    await sql`select pg_notify(${NOTIFY_CHANNEL}, ${payload})`.execute(db);
  });
  return {
    db,
    dialect: 'postgres',
    description: safeUrl,
    writeTx: (fn) => db.transaction().execute(fn),
    notices,
    close: async () => {
      await notices.close();
      await db.destroy();
    },
  };
}

/** True when `err` is a unique-constraint violation in either dialect. */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}

/** The constraint or column a unique violation names, to tell which rule refused a write. */
export function violatedConstraint(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const e = err as { constraint?: unknown; message?: unknown };
  if (typeof e.constraint === 'string') return e.constraint;
  return typeof e.message === 'string' ? e.message : '';
}
