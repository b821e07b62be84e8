/**
 * The catalog schema, one migration list for both dialects.
 *
 * Why not Kysely's Migrator: on SQLite it opens a deferred transaction, so several processes
 * starting on a fresh catalog at once (the race tests do exactly that) fail with SQLITE_BUSY
 * instead of waiting. Here every migration batch runs inside the catalog's write transaction
 * (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so exactly one process applies
 * it and the others wait and then see it applied.
 *
 * Applied migrations are frozen: change the schema by appending a migration.
 */
import { sql, type Kysely, type SqlBool } from 'kysely';
import type { Database } from './schema.js';
import type { Catalog } from './connect.js';

interface Migration {
  name: string;
  up(db: Kysely<Database>): Promise<void>;
}

// Kysely's schema builder is typed for a generic schema; the tables it creates are typed by `Database`.
type SchemaDb = Kysely<unknown>;

const MIGRATIONS: Migration[] = [
  {
    name: '001_initial',
    async up(typed) {
      const db = typed as unknown as SchemaDb;
      await db.schema
        .createTable('vaults')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('location', 'text', (c) => c.notNull())
        .addColumn('repository_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('items')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('vault_id', 'text', (c) => c.notNull().references('vaults.id'))
        .addColumn('source_path', 'text', (c) => c.notNull().unique())
        .addColumn('policy_id', 'text')
        .addColumn('previous_vault_id', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('operation', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('item_id', 'text')
        .addColumn('vault_id', 'text', (c) => c.notNull())
        .addColumn('trigger', 'text', (c) => c.notNull())
        .addColumn('retry_of', 'text')
        .addColumn('requested_by', 'text')
        .addColumn('idempotency_key', 'text')
        .addColumn('params', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('lease_owner', 'text')
        .addColumn('lease_expires_at', 'bigint')
        .addColumn('fencing_token', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('worker_id', 'text')
        .addColumn('cancel_requested_at', 'bigint')
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .addColumn('warnings', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('result', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('recovery_point_id', 'text')
        .addColumn('files_done', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('files_total', 'bigint')
        .addColumn('bytes_done', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_total', 'bigint')
        .addColumn('bytes_scanned', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_new', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_stored', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('eta_seconds', 'bigint')
        .execute();
      // The exclusivity rule of SPEC §2, enforced by the store: at most one active backup or
      // delete-data job per item id, whatever vault the job sits in. Mirrors ACTIVE_STATES and
      // EXCLUSIVE_OPERATIONS in src/jobs/job.ts (a test keeps them in step).
      await db.schema
        .createIndex('jobs_one_active_exclusive_per_item')
        .on('jobs')
        .column('item_id')
        .unique()
        .where(
          sql<SqlBool>`operation in ('backup', 'delete-data') and state in ('queued', 'in_progress', 'cancelling')`,
        )
        .execute();
      await db.schema
        .createIndex('jobs_idempotency_key')
        .on('jobs')
        .column('idempotency_key')
        .unique()
        .execute();
      await db.schema.createIndex('jobs_state_created').on('jobs').columns(['state', 'created_at']).execute();
      await db.schema
        .createIndex('jobs_vault_created')
        .on('jobs')
        .columns(['vault_id', 'created_at'])
        .execute();
      await db.schema
        .createIndex('jobs_item_created')
        .on('jobs')
        .columns(['item_id', 'created_at'])
        .execute();
      await db.schema
        .createTable('recovery_points')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('item_id', 'text', (c) => c.notNull())
        .addColumn('vault_id', 'text', (c) => c.notNull())
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('parent_id', 'text')
        .addColumn('source_path', 'text', (c) => c.notNull())
        .addColumn('files', 'bigint', (c) => c.notNull())
        .addColumn('bytes_scanned', 'bigint', (c) => c.notNull())
        .addColumn('bytes_new', 'bigint', (c) => c.notNull())
        .addColumn('bytes_stored', 'bigint', (c) => c.notNull())
        .addColumn('snapshot_time', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('recovery_points_item_vault')
        .on('recovery_points')
        .columns(['item_id', 'vault_id', 'created_at'])
        .execute();
      await db.schema
        .createTable('job_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('message', 'text')
        .execute();
      await db.schema.createIndex('job_events_job').on('job_events').columns(['job_id', 'at']).execute();
    },
  },
  {
    name: '002_access',
    async up(typed) {
      const db = typed as unknown as SchemaDb;
      await db.schema
        .createTable('api_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute();
      await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
    },
  },
  {
    name: '003_schedules',
    async up(typed) {
      const db = typed as unknown as SchemaDb;
      await db.schema
        .createTable('policies')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('schedule', 'text', (c) => c.notNull())
        .addColumn('timezone', 'text', (c) => c.notNull())
        .addColumn('jitter_seconds', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('retention', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('overlap', 'text', (c) => c.notNull())
        .addColumn('catch_up_seconds', 'bigint', (c) => c.notNull())
        .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('limit_read_bytes_per_sec', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('schedule_cursors')
        .addColumn('item_id', 'text', (c) => c.primaryKey())
        .addColumn('policy_id', 'text', (c) => c.notNull())
        .addColumn('next_due_at', 'bigint', (c) => c.notNull())
        .addColumn('fire_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('schedule_cursors_fire_at')
        .on('schedule_cursors')
        .column('fire_at')
        .execute();
      await db.schema.alterTable('jobs').addColumn('scheduled_for', 'bigint').execute();
      // Each due time of each item fires at most once, whichever server sees it first: a second
      // server's insert for the same (item, due time) conflicts here instead of running twice.
      await db.schema
        .createIndex('jobs_item_scheduled_for')
        .on('jobs')
        .columns(['item_id', 'scheduled_for'])
        .unique()
        .where(sql<SqlBool>`scheduled_for is not null`)
        .execute();
      // queue-one: at most one run waits per item.
      await db.schema
        .createIndex('jobs_one_deferred_per_item')
        .on('jobs')
        .column('item_id')
        .unique()
        .where(sql<SqlBool>`state = 'deferred'`)
        .execute();
    },
  },
  {
    name: '004_one_prune_per_vault',
    async up(typed) {
      const db = typed as unknown as SchemaDb;
      // Two prunes of one vault would race each other's index rewrites; one at a time.
      await db.schema
        .createIndex('jobs_one_active_prune_per_vault')
        .on('jobs')
        .column('vault_id')
        .unique()
        .where(sql<SqlBool>`operation = 'prune' and state in ('queued', 'in_progress', 'cancelling')`)
        .execute();
    },
  },
  {
    name: '005_workers',
    async up(typed) {
      const db = typed as unknown as SchemaDb;
      // The worker registry (app/worker-registry.ts): one row per running worker process.
      await db.schema
        .createTable('workers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('pid', 'bigint', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('concurrency', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
        .addColumn('heartbeat_ms', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
];

export const MIGRATION_NAMES = MIGRATIONS.map((m) => m.name);

export async function migrate(catalog: Catalog): Promise<string[]> {
  // Fast path without a write lock: every process start checks, few ever migrate.
  if (await allApplied(catalog.db)) return [];
  return catalog.writeTx(async (trx) => {
    if (catalog.dialect === 'postgres') {
      await sql`select pg_advisory_xact_lock(7316201)`.execute(trx);
    }
    await sql`create table if not exists schema_migrations (name text primary key, applied_at bigint not null)`.execute(
      trx,
    );
    const done = new Set(
      (await trx.selectFrom('schema_migrations').select('name').execute()).map((r) => r.name),
    );
    const applied: string[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.name)) continue;
      await m.up(trx);
      await trx.insertInto('schema_migrations').values({ name: m.name, applied_at: Date.now() }).execute();
      applied.push(m.name);
    }
    return applied;
  });
}

async function allApplied(db: Kysely<Database>): Promise<boolean> {
  try {
    const rows = await db.selectFrom('schema_migrations').select('name').execute();
    const done = new Set(rows.map((r) => r.name));
    return MIGRATIONS.every((m) => done.has(m.name));
  } catch {
    return false;
  }
}
