import type { Generated } from 'kysely';

/**
 * Row types of the catalog, shared by the SQLite and PostgreSQL dialects. Times are epoch
 * milliseconds (bigint columns) so both dialects compare them the same way.
 */
export interface VaultTable {
  id: string;
  name: string;
  location: string;
  repository_id: string;
  created_at: number;
}

export interface ItemTable {
  id: string;
  name: string;
  vault_id: string;
  /** Absolute, normalised path; unique so one directory is never protected twice. */
  source_path: string;
  policy_id: string | null;
  /** The vault the item was last moved out of: where a blocking job may still live. */
  previous_vault_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface JobTable {
  id: string;
  operation: string;
  state: string;
  item_id: string | null;
  vault_id: string;
  trigger: string;
  retry_of: string | null;
  requested_by: string | null;
  scheduled_for: number | null;
  idempotency_key: string | null;
  params: Generated<string>;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  updated_at: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  fencing_token: Generated<number>;
  worker_id: string | null;
  cancel_requested_at: number | null;
  error_code: string | null;
  error_message: string | null;
  warnings: Generated<string>;
  result: Generated<string>;
  recovery_point_id: string | null;
  files_done: Generated<number>;
  files_total: number | null;
  bytes_done: Generated<number>;
  bytes_total: number | null;
  bytes_scanned: Generated<number>;
  bytes_new: Generated<number>;
  bytes_stored: Generated<number>;
  eta_seconds: number | null;
}

export interface RecoveryPointTable {
  id: string;
  item_id: string;
  vault_id: string;
  job_id: string;
  parent_id: string | null;
  source_path: string;
  files: number;
  bytes_scanned: number;
  bytes_new: number;
  bytes_stored: number;
  snapshot_time: number;
  created_at: number;
}

export interface JobEventTable {
  id: string;
  job_id: string;
  at: number;
  state: string;
  message: string | null;
}

export interface ApiTokenTable {
  id: string;
  name: string;
  role: string;
  /** SHA-256 of the token: tokens are random, so a fast hash is enough and the token is never stored. */
  token_hash: string;
  created_at: number;
  created_by: string;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface AuditLogTable {
  id: string;
  at: number;
  actor: string;
  action: string;
  target: string;
  detail: string;
}

export interface PolicyTable {
  id: string;
  name: string;
  schedule: string;
  timezone: string;
  jitter_seconds: number;
  /** RetentionRules as JSON. */
  retention: string;
  overlap: string;
  catch_up_seconds: number;
  paused: number;
  /** Read rate limit for the policy's scheduled runs, bytes per second. */
  limit_read_bytes_per_sec: number | null;
  created_at: number;
  updated_at: number;
}

/** Where each scheduled item stands: its next nominal due time and when to fire it (with jitter). */
export interface ScheduleCursorTable {
  item_id: string;
  policy_id: string;
  next_due_at: number;
  fire_at: number;
  updated_at: number;
}

export interface SchemaMigrationTable {
  name: string;
  applied_at: number;
}

/** A worker process (a `coffer serve` pool or a `coffer worker`) that heartbeats while it runs. */
export interface WorkerTable {
  /** host:pid:start, the prefix of every lease owner it uses (`#slot` appended per slot). */
  id: string;
  host: string;
  pid: number;
  kind: string;
  version: string;
  concurrency: number;
  started_at: number;
  heartbeat_at: number;
  /** How often it promised to heartbeat: it counts as lost after three missed beats. */
  heartbeat_ms: number;
}

export interface Database {
  vaults: VaultTable;
  items: ItemTable;
  jobs: JobTable;
  recovery_points: RecoveryPointTable;
  job_events: JobEventTable;
  api_tokens: ApiTokenTable;
  audit_log: AuditLogTable;
  policies: PolicyTable;
  schedule_cursors: ScheduleCursorTable;
  schema_migrations: SchemaMigrationTable;
  workers: WorkerTable;
}
