/**
 * Every query coffer runs against its catalog, in one module so they can be read and reviewed
 * together (after pg-boss). Implements the domain core's JobStore: the exclusivity rule, leases
 * and fencing are decided here inside single transactions, never by check-then-insert.
 */
import { type Kysely, type Selectable, type Updateable } from 'kysely';
import type { Role } from '../access/roles.js';
import type { OverlapPolicy } from '../scheduler/schedule.js';
import { CofferError } from '../errors/coffer-error.js';
import { backupInProgressError, blockingJobView } from '../jobs/admission.js';
import type { Clock } from '../jobs/clock.js';
import { newId } from '../jobs/ids.js';
import {
  ACTIVE_STATES,
  EXCLUSIVE_OPERATIONS,
  describeTrigger,
  LEASED_STATES,
  type Job,
  type JobProgress,
  type JobState,
  type Operation,
  type TriggerKind,
} from '../jobs/job.js';
import type {
  Admission,
  AdmissionRequest,
  FinishOutcome,
  FinishRequest,
  HeartbeatResult,
  JobStore,
  Lease,
  RecoveryPointDraft,
} from '../jobs/ports.js';
import { isUniqueViolation, violatedConstraint, type Catalog } from './connect.js';
import { prepare, prepareInsert } from './prepared.js';
import type { Database, JobTable, RecoveryPointTable } from './schema.js';

export interface Vault {
  id: string;
  name: string;
  location: string;
  repositoryId: string;
  createdAt: number;
}

export interface VaultSummary extends Vault {
  items: number;
  activeJobs: number;
}

export interface Item {
  id: string;
  name: string;
  vaultId: string;
  sourcePath: string;
  policyId: string | null;
  previousVaultId: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface ItemSummary extends Item {
  vaultName: string;
  lastJob: { id: string; state: JobState; endedAt: number | null } | null;
  lastPoint: { id: string; snapshotTime: number } | null;
}

export interface RecoveryPoint extends RecoveryPointDraft {
  jobId: string;
  createdAt: number;
}

export interface JobEvent {
  at: number;
  state: string;
  message: string | null;
}

export interface ApiToken {
  id: string;
  name: string;
  role: Role;
  createdAt: number;
  createdBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface AuditEntry {
  at: number;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

export interface Policy {
  id: string;
  name: string;
  schedule: string;
  timezone: string;
  jitterSeconds: number;
  retention: Record<string, number>;
  overlap: OverlapPolicy;
  catchUpMs: number;
  paused: boolean;
  /** Read rate limit applied to the policy's scheduled runs. */
  limitReadBytesPerSec: number | null;
  createdAt: number;
  updatedAt: number;
}

export type PolicyInput = Omit<Policy, 'id' | 'createdAt' | 'updatedAt'>;

/** An item whose schedule may need attention now. */
export interface ScheduleCandidate {
  itemId: string;
  itemName: string;
  vaultId: string;
  policy: Policy;
  cursor: { policyId: string; nextDueAt: number; fireAt: number } | null;
}

/** One scheduling decision for one item, applied atomically by fireScheduled. */
export interface ScheduleStep {
  itemId: string;
  vaultId: string;
  policy: Policy;
  /** The cursor value this decision was made from (compare-and-set), or null to create it. */
  fromDue: number | null;
  nextDue: number;
  nextFireAt: number;
  /** Fire a run for this due time. */
  fire: number | null;
  /** Record runs missed while no server ran (older than the catch-up window). */
  missed: { first: number; last: number; count: number } | null;
}

export interface ScheduleOutcome {
  fired: number;
  skipped: number;
  deferred: number;
  missed: number;
  cancelled: number;
  alreadyDone: number;
}

export interface JobFilter {
  vaultId?: string | undefined;
  itemId?: string | undefined;
  states?: JobState[] | undefined;
  operations?: Operation[] | undefined;
  since?: number | undefined;
  until?: number | undefined;
  limit?: number | undefined;
  /** Opaque position from a previous page: the id of its last job. */
  before?: string | undefined;
}

/** What a worker process tells the catalog about itself at every heartbeat. */
export interface WorkerBeat {
  id: string;
  host: string;
  pid: number;
  kind: 'serve' | 'worker';
  version: string;
  concurrency: number;
  startedAt: number;
  heartbeatMs: number;
}

/** A registered worker process and the jobs its slots hold now. */
export interface WorkerRecord extends WorkerBeat {
  heartbeatAt: number;
  /** live: heartbeating; lost: missed three heartbeats (killed, cut off, or hung). */
  state: 'live' | 'lost';
  jobs: Job[];
}

/** A worker that missed this many heartbeats is lost. */
export const WORKER_MISSED_BEATS = 3;
/** Lost workers stay listed (with --all) this long, then any worker's heartbeat deletes them. */
export const WORKER_FORGET_MS = 24 * 3600_000;

type Db = Kysely<Database>;
const ADMISSION_ATTEMPTS = 5;
/** Every column an admission writes, in the order of the prepared insert. */
const JOB_INSERT_COLUMNS = [
  'id',
  'operation',
  'state',
  'item_id',
  'vault_id',
  'trigger',
  'retry_of',
  'requested_by',
  'idempotency_key',
  'params',
  'created_at',
  'started_at',
  'updated_at',
  'lease_owner',
  'lease_expires_at',
  'fencing_token',
  'worker_id',
] as const;

export class CatalogStore implements JobStore {
  /** Told how many expired leases this process ended, for the lease-expiry metric. */
  onReaped: ((count: number) => void) | null = null;

  constructor(
    readonly catalog: Catalog,
    private readonly clock: Clock,
  ) {}

  private get db(): Db {
    return this.catalog.db;
  }

  // The admission path's queries, compiled once (see prepared.ts): a trigger over HTTP runs
  // them on every request, and building them cost as much as running them.
  private readonly hot = {
    itemByRef: prepare(1, (db: Db, ref: string) =>
      db
        .selectFrom('items')
        .selectAll()
        .where((eb) => eb.or([eb('name', '=', ref), eb('id', '=', ref)])),
    ),
    /** The live exclusive job holding an item, with the names its refusal shows, in one read. */
    blockingJob: prepare(2, (db: Db, itemId: string, requestedVaultId: string) =>
      db
        .selectFrom('jobs')
        .innerJoin('items', 'items.id', 'jobs.item_id')
        .leftJoin('vaults', 'vaults.id', 'jobs.vault_id')
        .selectAll('jobs')
        .select((eb) => [
          'items.name as blocking_item_name',
          'vaults.name as blocking_vault_name',
          eb
            .selectFrom('vaults as rv')
            .select('rv.name')
            .where('rv.id', '=', requestedVaultId)
            .as('requested_vault_name'),
        ])
        .where('jobs.item_id', '=', itemId)
        .where('jobs.operation', 'in', [...EXCLUSIVE_OPERATIONS])
        .where('jobs.state', 'in', [...ACTIVE_STATES]),
    ),
    insertJob: prepareInsert('jobs', JOB_INSERT_COLUMNS),
    /** Ends jobs whose lease expired (see reapExpiredIn); `now` is the only argument. */
    reap: prepare(1, (db: Db, now: number) =>
      db
        .updateTable('jobs')
        .set((eb) => ({
          state: eb.case().when('state', '=', 'cancelling').then('cancelled').else('failed').end(),
          error_code: eb
            .case()
            .when('state', '=', 'cancelling')
            .then('JobCancelled')
            .else('WorkerLost')
            .end(),
          error_message: eb
            .case()
            .when('state', '=', 'cancelling')
            .then('cancel confirmed by lease expiry: the worker stopped heartbeating')
            .else('the worker stopped heartbeating and its lease expired')
            .end(),
          ended_at: now,
          updated_at: now,
          lease_owner: null,
          lease_expires_at: null,
          fencing_token: eb('fencing_token', '+', 1),
        }))
        .where('state', 'in', [...LEASED_STATES])
        .where('lease_expires_at', '<', now)
        .returning(['id', 'state', 'error_message']),
    ),
  };

  // ---------------------------------------------------------------- vaults

  async createVault(v: { name: string; location: string; repositoryId: string }): Promise<Vault> {
    const row = {
      id: newId('v'),
      name: v.name,
      location: v.location,
      repository_id: v.repositoryId,
      created_at: this.clock.now(),
    };
    try {
      await this.db.insertInto('vaults').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err))
        throw new CofferError('VaultAlreadyExists', `a vault named '${v.name}' already exists`, {
          vault: v.name,
        });
      throw err;
    }
    return toVault(row);
  }

  async listVaults(): Promise<VaultSummary[]> {
    const rows = await this.db
      .selectFrom('vaults')
      .selectAll('vaults')
      .select((eb) => [
        eb
          .selectFrom('items')
          .whereRef('items.vault_id', '=', 'vaults.id')
          .select(eb.fn.countAll<number>().as('n'))
          .as('items'),
        eb
          .selectFrom('jobs')
          .whereRef('jobs.vault_id', '=', 'vaults.id')
          .where('jobs.state', 'in', [...ACTIVE_STATES])
          .select(eb.fn.countAll<number>().as('n'))
          .as('active_jobs'),
      ])
      .orderBy('name')
      .execute();
    return rows.map((r) => ({
      ...toVault(r),
      items: Number(r.items ?? 0),
      activeJobs: Number(r.active_jobs ?? 0),
    }));
  }

  /** Finds a vault by name or id. */
  async getVault(ref: string): Promise<Vault> {
    const row = await this.db
      .selectFrom('vaults')
      .selectAll()
      .where((eb) => eb.or([eb('name', '=', ref), eb('id', '=', ref)]))
      .executeTakeFirst();
    if (!row) throw new CofferError('VaultNotFound', `no vault named '${ref}'`, { vault: ref });
    return toVault(row);
  }

  // ---------------------------------------------------------------- items

  async addItem(i: {
    name: string;
    vaultId: string;
    sourcePath: string;
    policyId?: string | null;
  }): Promise<Item> {
    const now = this.clock.now();
    const row = {
      id: newId('i', now),
      name: i.name,
      vault_id: i.vaultId,
      source_path: i.sourcePath,
      policy_id: i.policyId ?? null,
      previous_vault_id: null,
      created_at: now,
      updated_at: now,
    };
    try {
      await this.db.insertInto('items').values(row).execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const existing = await this.db
        .selectFrom('items')
        .innerJoin('vaults', 'vaults.id', 'items.vault_id')
        .select(['items.name', 'items.source_path', 'vaults.name as vault_name'])
        .where((eb) => eb.or([eb('items.name', '=', i.name), eb('items.source_path', '=', i.sourcePath)]))
        .executeTakeFirst();
      throw new CofferError(
        'ItemAlreadyProtected',
        existing && existing.name !== i.name
          ? `${i.sourcePath} is already protected as item '${existing.name}' in vault '${existing.vault_name}'`
          : `an item named '${i.name}' already exists${existing ? ` in vault '${existing.vault_name}'` : ''}`,
        { item: existing?.name ?? i.name, path: i.sourcePath, vault: existing?.vault_name ?? null },
      );
    }
    return toItem(row);
  }

  /**
   * Re-creates an item under its original id, as found in a vault's snapshots: the item id is
   * the stable identity the exclusivity rule keys on, so it must survive a lost catalog.
   */
  async importItem(i: {
    id: string;
    name: string;
    vaultId: string;
    sourcePath: string;
  }): Promise<{ item: Item; created: boolean }> {
    const existing = await this.db.selectFrom('items').selectAll().where('id', '=', i.id).executeTakeFirst();
    if (existing) return { item: toItem(existing), created: false };
    const now = this.clock.now();
    const row = {
      id: i.id,
      name: i.name,
      vault_id: i.vaultId,
      source_path: i.sourcePath,
      policy_id: null,
      previous_vault_id: null,
      created_at: now,
      updated_at: now,
    };
    try {
      await this.db.insertInto('items').values(row).execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      throw new CofferError(
        'ItemAlreadyProtected',
        `cannot re-create item '${i.name}' (${i.id}): its name or directory ${i.sourcePath} is already protected by another item`,
        {
          item: i.name,
          path: i.sourcePath,
        },
      );
    }
    return { item: toItem(row), created: true };
  }

  /** Records a recovery point found in storage; a point the catalog already knows is left alone. */
  async importPoint(p: RecoveryPointDraft & { jobId: string }): Promise<boolean> {
    const res = await this.db
      .insertInto('recovery_points')
      .values(pointRow(p, p.jobId, this.clock.now()))
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  /** Finds an item by name or id. */
  async getItem(ref: string): Promise<Item> {
    const [row] = await this.hot.itemByRef.execute(this.db, ref);
    if (!row) throw new CofferError('ItemNotFound', `no protected item named '${ref}'`, { item: ref });
    return toItem(row);
  }

  async listItems(): Promise<ItemSummary[]> {
    const rows = await this.db
      .selectFrom('items')
      .innerJoin('vaults', 'vaults.id', 'items.vault_id')
      .selectAll('items')
      .select('vaults.name as vault_name')
      .orderBy('items.name')
      .execute();
    const out: ItemSummary[] = [];
    for (const r of rows) {
      const lastJob = await this.db
        .selectFrom('jobs')
        .select(['id', 'state', 'ended_at'])
        .where('item_id', '=', r.id)
        .where('operation', '=', 'backup')
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      const lastPoint = await this.db
        .selectFrom('recovery_points')
        .select(['id', 'snapshot_time'])
        .where('item_id', '=', r.id)
        .orderBy('snapshot_time', 'desc')
        .limit(1)
        .executeTakeFirst();
      out.push({
        ...toItem(r),
        vaultName: r.vault_name,
        lastJob: lastJob
          ? { id: lastJob.id, state: lastJob.state as JobState, endedAt: lastJob.ended_at }
          : null,
        lastPoint: lastPoint ? { id: lastPoint.id, snapshotTime: lastPoint.snapshot_time } : null,
      });
    }
    return out;
  }

  /**
   * Points the item at another vault. Allowed while a job of the item runs in the old vault:
   * that job keeps blocking new backups (the exclusivity rule is per item id, across vaults).
   */
  async moveItem(itemId: string, vaultId: string): Promise<Item> {
    return this.catalog.writeTx(async (trx) => {
      const item = await trx.selectFrom('items').selectAll().where('id', '=', itemId).executeTakeFirst();
      if (!item)
        throw new CofferError('ItemNotFound', `no protected item with id '${itemId}'`, { item: itemId });
      if (item.vault_id === vaultId) return toItem(item);
      const now = this.clock.now();
      await trx
        .updateTable('items')
        .set({ vault_id: vaultId, previous_vault_id: item.vault_id, updated_at: now })
        .where('id', '=', itemId)
        .execute();
      return toItem({ ...item, vault_id: vaultId, previous_vault_id: item.vault_id, updated_at: now });
    });
  }

  // ---------------------------------------------------------------- admission

  async admit(req: AdmissionRequest): Promise<Admission> {
    if (req.itemId === null && (EXCLUSIVE_OPERATIONS as readonly string[]).includes(req.operation)) {
      throw new CofferError('InvalidRequest', `a ${req.operation} job needs an item`, { field: 'item' });
    }
    for (let attempt = 0; attempt < ADMISSION_ATTEMPTS; attempt++) {
      if (req.idempotencyKey) {
        const existing = await this.findByIdempotencyKey(req.idempotencyKey);
        if (existing) return { job: existing, lease: null, reused: true };
      }
      const now = this.clock.now();
      // Fast refusal without a write lock when a live job already holds the item. This only
      // ever refuses; whether a job is admitted is still decided by the unique index below.
      if (req.itemId && (EXCLUSIVE_OPERATIONS as readonly string[]).includes(req.operation)) {
        const blocking = await this.blockingRefusal(req);
        const expired = blocking?.job.leaseExpiresAt != null && blocking.job.leaseExpiresAt < now;
        if (blocking && !expired) throw blocking.error;
      }
      const id = newId('j', now);
      const lease = req.claimBy ? { jobId: id, owner: req.claimBy.owner, token: 1 } : null;
      try {
        const row = await this.catalog.writeTx(async (trx) => {
          // Recovery by lease expiry, in the admitting transaction: a dead worker's job must
          // not block this trigger, and no daemon is needed for that in the embedded mode.
          await this.reapExpiredIn(trx, now);
          const [inserted] = await this.hot.insertJob.execute(trx, {
            id,
            operation: req.operation,
            state: lease ? 'in_progress' : 'queued',
            item_id: req.itemId,
            vault_id: req.vaultId,
            trigger: req.trigger,
            retry_of: req.retryOf ?? null,
            requested_by: req.requestedBy ?? null,
            idempotency_key: req.idempotencyKey ?? null,
            params: JSON.stringify(req.params ?? {}),
            created_at: now,
            started_at: lease ? now : null,
            updated_at: now,
            lease_owner: lease?.owner ?? null,
            lease_expires_at: lease && req.claimBy ? now + req.claimBy.leaseMs : null,
            fencing_token: lease ? 1 : 0,
            worker_id: lease?.owner ?? null,
          });
          if (!inserted) throw new Error('the job insert returned no row');
          await addEvent(trx, id, 'queued', now, describeAdmission(req));
          if (lease) await addEvent(trx, id, 'in_progress', now, `claimed by ${lease.owner}`);
          return inserted;
        });
        if (!lease) this.catalog.notices?.publish({ kind: 'queued' });
        return { job: toJob(row), lease, reused: false };
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        if (req.idempotencyKey && violatedConstraint(err).includes('idempotency')) continue;
        if (req.operation === 'prune') throw await this.pruneRefusal(req.vaultId);
        const refusal = await this.refusalFor(req);
        if (refusal) throw refusal;
        // The blocking job ended between our insert and our read: admit again.
      }
    }
    throw new CofferError('CatalogUnavailable', 'admission kept conflicting; try again', {
      item: req.itemId,
    });
  }

  private async findByIdempotencyKey(key: string): Promise<Job | null> {
    const row = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
    return row ? toJob(row) : null;
  }

  private async refusalFor(req: AdmissionRequest): Promise<CofferError | null> {
    return (await this.blockingRefusal(req))?.error ?? null;
  }

  /** The job holding the request's item, and the refusal naming it; one read. */
  private async blockingRefusal(req: AdmissionRequest): Promise<{ job: Job; error: CofferError } | null> {
    if (!req.itemId) return null;
    const [row] = await this.hot.blockingJob.execute(this.db, req.itemId, req.vaultId);
    if (!row) return null;
    const job = toJob(row);
    const itemName = row.blocking_item_name;
    const error = backupInProgressError(
      blockingJobView(job, { vaultName: row.blocking_vault_name ?? job.vaultId, itemName }),
      {
        itemName,
        requestedVaultId: req.vaultId,
        requestedVaultName: row.requested_vault_name ?? req.vaultId,
      },
    );
    return { job, error };
  }

  private async pruneRefusal(vaultId: string): Promise<CofferError> {
    const row = await this.db
      .selectFrom('jobs')
      .innerJoin('vaults', 'vaults.id', 'jobs.vault_id')
      .select(['jobs.id', 'jobs.state', 'vaults.name'])
      .where('jobs.vault_id', '=', vaultId)
      .where('jobs.operation', '=', 'prune')
      .where('jobs.state', 'in', [...ACTIVE_STATES])
      .executeTakeFirst();
    return new CofferError(
      'PruneInProgress',
      `prune job ${row?.id ?? '?'} of vault '${row?.name ?? vaultId}' is ${row?.state ?? 'active'}`,
      {
        vault: row?.name ?? vaultId,
        jobId: row?.id ?? null,
      },
    );
  }

  /** Removes recovery points from the catalog (retention); their snapshots are forgotten after. */
  async deletePoints(ids: string[]): Promise<number> {
    if (!ids.length) return 0;
    const res = await this.db.deleteFrom('recovery_points').where('id', 'in', ids).executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /**
   * Whether a job that reads or writes this vault's data (backup, restore, check) and was
   * already running at `markTime` is still running: prune deletes condemned data only after
   * every such job has ended.
   */
  async dataJobRunningSince(vaultId: string, markTime: number): Promise<boolean> {
    const row = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('vault_id', '=', vaultId)
      .where('operation', 'in', ['backup', 'restore', 'check'])
      .where('state', 'in', [...LEASED_STATES])
      .where('started_at', '<=', markTime)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Every point in a vault, for retention. */
  async pointsInVault(vaultId: string): Promise<RecoveryPoint[]> {
    return (
      await this.db
        .selectFrom('recovery_points')
        .selectAll()
        .where('vault_id', '=', vaultId)
        .orderBy('snapshot_time', 'desc')
        .execute()
    ).map(toPoint);
  }

  async activeExclusiveJob(itemId: string): Promise<Job | null> {
    const row = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('item_id', '=', itemId)
      .where('operation', 'in', [...EXCLUSIVE_OPERATIONS])
      .where('state', 'in', [...ACTIVE_STATES])
      .executeTakeFirst();
    return row ? toJob(row) : null;
  }

  // ---------------------------------------------------------------- leases

  async claimNext(owner: string, leaseMs: number): Promise<{ job: Job; lease: Lease } | null> {
    const now = this.clock.now();
    // Idle workers poll often; a read finds "nothing to do" without taking the write lock.
    const work = await this.db
      .selectFrom('jobs')
      .select('id')
      .where((eb) =>
        eb.or([
          eb('state', '=', 'queued'),
          eb.and([eb('state', 'in', [...LEASED_STATES]), eb('lease_expires_at', '<', now)]),
        ]),
      )
      .limit(1)
      .executeTakeFirst();
    if (!work) return null;
    const claimed = await this.catalog.writeTx(async (trx) => {
      await this.reapExpiredIn(trx, now);
      const next = await trx
        .selectFrom('jobs')
        .select(['id', 'fencing_token'])
        .where('state', '=', 'queued')
        .orderBy('created_at')
        .orderBy('id')
        .limit(1)
        .$if(this.catalog.dialect === 'postgres', (qb) => qb.forUpdate().skipLocked())
        .executeTakeFirst();
      if (!next) return null;
      const token = next.fencing_token + 1;
      await trx
        .updateTable('jobs')
        .set({
          state: 'in_progress',
          started_at: now,
          updated_at: now,
          lease_owner: owner,
          lease_expires_at: now + leaseMs,
          fencing_token: token,
          worker_id: owner,
        })
        .where('id', '=', next.id)
        .where('state', '=', 'queued')
        .execute();
      await addEvent(trx, next.id, 'in_progress', now, `claimed by ${owner}`);
      return { jobId: next.id, owner, token };
    });
    if (!claimed) return null;
    return { job: await this.getJob(claimed.jobId), lease: claimed };
  }

  async heartbeat(lease: Lease, progress: JobProgress, leaseMs: number): Promise<HeartbeatResult> {
    const now = this.clock.now();
    const row = await this.db
      .updateTable('jobs')
      .set({ ...progressColumns(progress), lease_expires_at: now + leaseMs, updated_at: now })
      .where('id', '=', lease.jobId)
      .where('lease_owner', '=', lease.owner)
      .where('fencing_token', '=', lease.token)
      .where('state', 'in', [...LEASED_STATES])
      .where('lease_expires_at', '>=', now)
      .returning('state')
      .executeTakeFirst();
    if (!row) return { held: false, cancelRequested: false };
    return { held: true, cancelRequested: row.state === 'cancelling' };
  }

  async finish(lease: Lease, req: FinishRequest): Promise<FinishOutcome> {
    const now = this.clock.now();
    return this.catalog.writeTx(async (trx) => {
      // Fencing: the state change (and the recovery point) happen only while this exact lease
      // is live. A worker that was paused or cut off past its lease finds nothing to update.
      const current = await trx
        .selectFrom('jobs')
        .select(['state', 'item_id', 'vault_id'])
        .where('id', '=', lease.jobId)
        .where('lease_owner', '=', lease.owner)
        .where('fencing_token', '=', lease.token)
        .where('state', 'in', [...LEASED_STATES])
        .where('lease_expires_at', '>=', now)
        .$if(this.catalog.dialect === 'postgres', (qb) => qb.forUpdate())
        .executeTakeFirst();
      if (!current) {
        throw new CofferError(
          'LeaseLost',
          `job ${lease.jobId} is no longer held by ${lease.owner}; nothing was committed`,
          {
            jobId: lease.jobId,
          },
        );
      }
      // A cancel requested while the work finished wins: a job the operator cancelled never
      // turns completed, and its recovery point is not committed.
      const cancelWins = current.state === 'cancelling' && req.state !== 'failed';
      const state = cancelWins ? 'cancelled' : req.state;
      const commitPoint =
        !cancelWins && req.recoveryPoint !== undefined && state !== 'cancelled' && state !== 'failed';
      await trx
        .updateTable('jobs')
        .set({
          ...progressColumns(req.progress),
          state,
          ended_at: now,
          updated_at: now,
          lease_owner: null,
          lease_expires_at: null,
          error_code: cancelWins ? 'JobCancelled' : (req.errorCode ?? null),
          error_message: cancelWins
            ? 'cancelled by request; nothing was committed'
            : (req.errorMessage ?? null),
          warnings: JSON.stringify(req.warnings ?? []),
          result: JSON.stringify(req.result ?? {}),
          recovery_point_id: commitPoint ? req.recoveryPoint!.id : null,
          eta_seconds: null,
        })
        .where('id', '=', lease.jobId)
        .execute();
      if (commitPoint) {
        const p = req.recoveryPoint!;
        await trx
          .insertInto('recovery_points')
          .values(pointRow(p, lease.jobId, now))
          .execute();
      }
      await addEvent(
        trx,
        lease.jobId,
        state,
        now,
        cancelWins ? 'cancel acknowledged by worker' : (req.errorMessage ?? null),
      );
      return { state, recoveryPointCommitted: commitPoint };
    });
  }

  async requestCancel(jobId: string): Promise<Job> {
    const now = this.clock.now();
    let running = false;
    await this.catalog.writeTx(async (trx) => {
      const job = await this.jobIn(trx, jobId);
      if (job.state === 'queued' || job.state === 'deferred') {
        // Nobody holds a queued or waiting job, so nobody else has to acknowledge: it never starts.
        await trx
          .updateTable('jobs')
          .set(cancelledBeforeStart(now, 'cancelled before it started'))
          .where('id', '=', jobId)
          .where('state', '=', job.state)
          .execute();
        await addEvent(trx, jobId, 'cancelled', now, `cancelled while ${job.state}`);
      } else if (job.state === 'in_progress') {
        running = true;
        await trx
          .updateTable('jobs')
          .set({ state: 'cancelling', cancel_requested_at: now, updated_at: now })
          .where('id', '=', jobId)
          .where('state', '=', 'in_progress')
          .execute();
        await addEvent(
          trx,
          jobId,
          'cancelling',
          now,
          'cancel requested; waiting for the worker to acknowledge',
        );
      } else if (job.state !== 'cancelling') {
        throw new CofferError('JobNotCancellable', `job ${jobId} already ended ${job.state}`, {
          jobId,
          state: job.state,
        });
      }
    });
    // The worker holding the job hears it now instead of at its next heartbeat.
    if (running) this.catalog.notices?.publish({ kind: 'cancel', jobId });
    return this.getJob(jobId);
  }

  async release(jobId: string, opts: { force: boolean; reason?: string }): Promise<Job> {
    const now = this.clock.now();
    await this.catalog.writeTx(async (trx) => {
      const job = await this.jobIn(trx, jobId);
      if (job.state === 'queued' || job.state === 'deferred') {
        await trx
          .updateTable('jobs')
          .set({
            state: 'cancelled',
            ended_at: now,
            updated_at: now,
            error_code: 'JobCancelled',
            error_message: 'released by operator before it started',
          })
          .where('id', '=', jobId)
          .execute();
        await addEvent(trx, jobId, 'cancelled', now, 'released by operator while queued');
        return;
      }
      if (job.state !== 'in_progress' && job.state !== 'cancelling') {
        throw new CofferError(
          'JobNotCancellable',
          `job ${jobId} already ended ${job.state}; nothing to release`,
          { jobId, state: job.state },
        );
      }
      const live = job.leaseExpiresAt !== null && job.leaseExpiresAt >= now;
      if (live && !opts.force) {
        throw new CofferError(
          'JobLeaseActive',
          `worker ${job.leaseOwner} still holds job ${jobId} until ${new Date(job.leaseExpiresAt!).toISOString()}`,
          {
            jobId,
            workerId: job.leaseOwner,
            leaseExpiresAt: new Date(job.leaseExpiresAt!).toISOString(),
          },
        );
      }
      const endState = job.state === 'cancelling' ? 'cancelled' : 'failed';
      // Advancing the fencing token is what makes a forced release safe: the old worker's
      // heartbeat and commit both name the old token and now match nothing.
      await trx
        .updateTable('jobs')
        .set({
          state: endState,
          ended_at: now,
          updated_at: now,
          lease_owner: null,
          lease_expires_at: null,
          fencing_token: job.fencingToken + 1,
          error_code: endState === 'cancelled' ? 'JobCancelled' : 'WorkerLost',
          error_message:
            opts.reason ??
            (live
              ? `released by operator while ${job.leaseOwner} held the lease (fenced)`
              : 'released by operator after its lease expired'),
        })
        .where('id', '=', jobId)
        .execute();
      await addEvent(
        trx,
        jobId,
        endState,
        now,
        live ? 'force-released by operator; old worker fenced' : 'released by operator',
      );
    });
    // A fenced worker learns at once that its lease is gone and stops.
    this.catalog.notices?.publish({ kind: 'cancel', jobId });
    return this.getJob(jobId);
  }

  async reapExpired(): Promise<number> {
    return this.catalog.writeTx((trx) => this.reapExpiredIn(trx, this.clock.now()));
  }

  /**
   * Reaps only when a cheap read finds an expired lease, so every command can call it: the
   * jobs view then never shows a dead worker's job as in progress, and the common case takes
   * no write lock.
   */
  async reapIfExpired(): Promise<number> {
    const now = this.clock.now();
    const expired = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('state', 'in', [...LEASED_STATES])
      .where('lease_expires_at', '<', now)
      .limit(1)
      .executeTakeFirst();
    return expired ? this.reapExpired() : 0;
  }

  private async reapExpiredIn(trx: Db, now: number): Promise<number> {
    const reaped = await this.hot.reap.execute(trx, now);
    for (const r of reaped) await addEvent(trx, r.id, r.state, now, r.error_message);
    if (reaped.length) this.onReaped?.(reaped.length);
    return reaped.length;
  }

  // ---------------------------------------------------------------- worker registry

  /**
   * Registers or refreshes a worker process (an upsert, so a worker whose row was forgotten,
   * e.g. after a long partition, reappears at its next beat), and forgets workers that have
   * been silent for WORKER_FORGET_MS.
   */
  async workerHeartbeat(w: WorkerBeat): Promise<void> {
    const now = this.clock.now();
    const row = {
      id: w.id,
      host: w.host,
      pid: w.pid,
      kind: w.kind,
      version: w.version,
      concurrency: w.concurrency,
      started_at: w.startedAt,
      heartbeat_at: now,
      heartbeat_ms: w.heartbeatMs,
    };
    await this.db
      .insertInto('workers')
      .values(row)
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet({ heartbeat_at: now, heartbeat_ms: w.heartbeatMs, concurrency: w.concurrency }),
      )
      .execute();
    await this.db
      .deleteFrom('workers')
      .where('heartbeat_at', '<', now - WORKER_FORGET_MS)
      .execute();
  }

  /** A graceful shutdown removes the worker at once instead of leaving it to turn lost. */
  async deregisterWorker(id: string): Promise<void> {
    await this.db.deleteFrom('workers').where('id', '=', id).execute();
  }

  /** Registered workers, newest first, each with the jobs its slots hold (by lease owner). */
  async listWorkers(opts: { includeLost: boolean }): Promise<WorkerRecord[]> {
    const now = this.clock.now();
    const [rows, held] = await Promise.all([
      this.db.selectFrom('workers').selectAll().orderBy('started_at', 'desc').orderBy('id').execute(),
      this.db
        .selectFrom('jobs')
        .selectAll()
        .where('state', 'in', [...LEASED_STATES])
        .where('lease_owner', 'is not', null)
        .orderBy('id')
        .execute(),
    ]);
    const byWorker = new Map<string, Job[]>();
    for (const r of held) {
      // A slot's owner is `<worker id>#<slot>`; a single-slot worker uses its id alone.
      const owner = r.lease_owner!;
      const hash = owner.lastIndexOf('#');
      const id = hash < 0 ? owner : owner.slice(0, hash);
      const list = byWorker.get(id) ?? [];
      list.push(toJob(r));
      byWorker.set(id, list);
    }
    const out: WorkerRecord[] = [];
    for (const r of rows) {
      const state = r.heartbeat_at + WORKER_MISSED_BEATS * r.heartbeat_ms >= now ? 'live' : 'lost';
      if (state === 'lost' && !opts.includeLost) continue;
      out.push({
        id: r.id,
        host: r.host,
        pid: r.pid,
        kind: r.kind === 'serve' ? 'serve' : 'worker',
        version: r.version,
        concurrency: r.concurrency,
        startedAt: r.started_at,
        heartbeatMs: r.heartbeat_ms,
        heartbeatAt: r.heartbeat_at,
        state,
        jobs: byWorker.get(r.id) ?? [],
      });
    }
    return out;
  }

  // ---------------------------------------------------------------- access

  async createToken(t: {
    name: string;
    role: Role;
    tokenHash: string;
    createdBy: string;
  }): Promise<ApiToken> {
    const row = {
      id: newId('t'),
      name: t.name,
      role: t.role,
      token_hash: t.tokenHash,
      created_at: this.clock.now(),
      created_by: t.createdBy,
      last_used_at: null,
      revoked_at: null,
    };
    try {
      await this.db.insertInto('api_tokens').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err))
        throw new CofferError('InvalidRequest', `a token named '${t.name}' already exists`, {
          field: 'name',
        });
      throw err;
    }
    return toToken(row);
  }

  async listTokens(): Promise<ApiToken[]> {
    return (await this.db.selectFrom('api_tokens').selectAll().orderBy('name').execute()).map(toToken);
  }

  async countActiveTokens(): Promise<number> {
    const r = await this.db
      .selectFrom('api_tokens')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('revoked_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** The live token with this hash; records when it was last used (at most once a minute). */
  async findToken(tokenHash: string): Promise<ApiToken | null> {
    const row = await this.db
      .selectFrom('api_tokens')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row) return null;
    const now = this.clock.now();
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      await this.db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', row.id).execute();
    }
    return toToken(row);
  }

  async revokeToken(ref: string): Promise<ApiToken> {
    const now = this.clock.now();
    const row = await this.db
      .selectFrom('api_tokens')
      .selectAll()
      .where((eb) => eb.or([eb('name', '=', ref), eb('id', '=', ref)]))
      .executeTakeFirst();
    if (!row) throw new CofferError('InvalidRequest', `no API token named '${ref}'`, { field: 'token' });
    if (row.revoked_at === null)
      await this.db.updateTable('api_tokens').set({ revoked_at: now }).where('id', '=', row.id).execute();
    return toToken({ ...row, revoked_at: row.revoked_at ?? now });
  }

  async audit(
    actor: string,
    action: string,
    target: string,
    detail: Record<string, unknown> = {},
  ): Promise<void> {
    const at = this.clock.now();
    await this.db
      .insertInto('audit_log')
      .values({ id: newId('a', at), at, actor, action, target, detail: JSON.stringify(detail) })
      .execute();
  }

  async listAudit(limit: number): Promise<AuditEntry[]> {
    const rows = await this.db
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      at: r.at,
      actor: r.actor,
      action: r.action,
      target: r.target,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
    }));
  }

  /** Job counts by state and operation, for metrics. */
  async countJobs(): Promise<{ state: string; operation: string; n: number }[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select(['state', 'operation', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy(['state', 'operation'])
      .execute();
    return rows.map((r) => ({ state: r.state, operation: r.operation, n: Number(r.n) }));
  }

  // ---------------------------------------------------------------- policies

  async createPolicy(p: PolicyInput): Promise<Policy> {
    const now = this.clock.now();
    const row = { id: newId('p', now), ...policyRow(p), created_at: now, updated_at: now };
    try {
      await this.db.insertInto('policies').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err))
        throw new CofferError('InvalidRequest', `a policy named '${p.name}' already exists`, {
          field: 'name',
        });
      throw err;
    }
    return toPolicy(row);
  }

  async listPolicies(): Promise<(Policy & { items: number })[]> {
    const rows = await this.db
      .selectFrom('policies')
      .selectAll('policies')
      .select((eb) =>
        eb
          .selectFrom('items')
          .whereRef('items.policy_id', '=', 'policies.id')
          .select(eb.fn.countAll<number>().as('n'))
          .as('items'),
      )
      .orderBy('name')
      .execute();
    return rows.map((r) => ({ ...toPolicy(r), items: Number(r.items ?? 0) }));
  }

  async getPolicy(ref: string): Promise<Policy> {
    const row = await this.db
      .selectFrom('policies')
      .selectAll()
      .where((eb) => eb.or([eb('name', '=', ref), eb('id', '=', ref)]))
      .executeTakeFirst();
    if (!row) throw new CofferError('PolicyNotFound', `no policy named '${ref}'`, { policy: ref });
    return toPolicy(row);
  }

  async updatePolicy(id: string, p: PolicyInput): Promise<Policy> {
    const now = this.clock.now();
    await this.catalog.writeTx(async (trx) => {
      await trx
        .updateTable('policies')
        .set({ ...policyRow(p), updated_at: now })
        .where('id', '=', id)
        .execute();
      // The schedule may have changed: cursors are recomputed from now on the next tick.
      await trx.deleteFrom('schedule_cursors').where('policy_id', '=', id).execute();
    });
    return this.getPolicy(id);
  }

  async deletePolicy(id: string): Promise<void> {
    await this.catalog.writeTx(async (trx) => {
      const users = await trx.selectFrom('items').select('name').where('policy_id', '=', id).execute();
      if (users.length) {
        const policy = await trx
          .selectFrom('policies')
          .select('name')
          .where('id', '=', id)
          .executeTakeFirst();
        throw new CofferError(
          'PolicyInUse',
          `policy '${policy?.name ?? id}' is used by ${users.map((u) => u.name).join(', ')}`,
          {
            policy: policy?.name ?? id,
            items: users.map((u) => u.name),
          },
        );
      }
      await trx.deleteFrom('policies').where('id', '=', id).execute();
    });
  }

  async itemsWithPolicy(policyId: string): Promise<Item[]> {
    return (
      await this.db
        .selectFrom('items')
        .selectAll()
        .where('policy_id', '=', policyId)
        .orderBy('name')
        .execute()
    ).map(toItem);
  }

  async setItemPolicy(itemId: string, policyId: string | null): Promise<Item> {
    const now = this.clock.now();
    await this.catalog.writeTx(async (trx) => {
      await trx
        .updateTable('items')
        .set({ policy_id: policyId, updated_at: now })
        .where('id', '=', itemId)
        .execute();
      await trx.deleteFrom('schedule_cursors').where('item_id', '=', itemId).execute();
    });
    return this.getItem(itemId);
  }

  // ---------------------------------------------------------------- scheduling

  /** Items with an active policy whose cursor is missing, stale or due to fire by `now`. */
  async scheduleCandidates(now: number, limit: number): Promise<ScheduleCandidate[]> {
    const rows = await this.db
      .selectFrom('items')
      .innerJoin('policies', 'policies.id', 'items.policy_id')
      .leftJoin('schedule_cursors', 'schedule_cursors.item_id', 'items.id')
      .selectAll('policies')
      .select([
        'items.id as item_id',
        'items.name as item_name',
        'items.vault_id as item_vault_id',
        'schedule_cursors.policy_id as cursor_policy_id',
        'schedule_cursors.next_due_at as cursor_next_due_at',
        'schedule_cursors.fire_at as cursor_fire_at',
      ])
      .where('policies.paused', '=', 0)
      .where((eb) =>
        eb.or([
          eb('schedule_cursors.item_id', 'is', null),
          eb('schedule_cursors.fire_at', '<=', now),
          eb('schedule_cursors.policy_id', '!=', eb.ref('items.policy_id')),
        ]),
      )
      .orderBy('schedule_cursors.fire_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      itemId: r.item_id,
      itemName: r.item_name,
      vaultId: r.item_vault_id,
      policy: toPolicy(r),
      cursor:
        r.cursor_policy_id !== null && r.cursor_next_due_at !== null && r.cursor_fire_at !== null
          ? { policyId: r.cursor_policy_id, nextDueAt: r.cursor_next_due_at, fireAt: r.cursor_fire_at }
          : null,
    }));
  }

  /**
   * Applies scheduling decisions atomically. Safe with any number of servers deciding at once:
   * the cursor advances by compare-and-set, and a due time can produce at most one job row per
   * item (unique index on item + scheduled_for), so each due time fires at most once.
   */
  async fireScheduled(steps: ScheduleStep[]): Promise<ScheduleOutcome> {
    const out: ScheduleOutcome = {
      fired: 0,
      skipped: 0,
      deferred: 0,
      missed: 0,
      cancelled: 0,
      alreadyDone: 0,
    };
    const now = this.clock.now();
    /** Running scheduled jobs that cancel-running asked to stop, to notify after commit. */
    const cancelling: string[] = [];
    // Statements are batched per chunk (one grouped compare-and-set per schedule, one
    // multi-row insert for the runs): 10,000 items sharing a due time fire in a few statements.
    for (let i = 0; i < steps.length; i += 500) {
      const chunk = steps.slice(i, i + 500);
      await this.catalog.writeTx(async (trx) => {
        await this.reapExpiredIn(trx, now);
        const owned = await this.advanceCursors(trx, chunk, now);
        const mine = chunk.filter((s) => owned.has(s.itemId));
        out.alreadyDone += chunk.length - mine.length;
        // Missed runs first, so the jobs view lists the gap before the catch-up run.
        for (const step of mine) if (step.missed) await this.recordMissed(trx, step, now, out);
        const firing = mine.filter((s) => s.fire !== null);
        const inserted = firing.length
          ? await trx
              .insertInto('jobs')
              .values(
                firing.map((s) => ({
                  ...scheduledRow(s, now),
                  id: newId('j', now),
                  state: 'queued',
                  scheduled_for: s.fire,
                })),
              )
              .onConflict((oc) => oc.doNothing())
              .returning(['id', 'item_id', 'scheduled_for'])
              .execute()
          : [];
        if (inserted.length) {
          await trx
            .insertInto('job_events')
            .values(
              inserted.map((r) => ({
                id: newId('e', now),
                job_id: r.id,
                at: now,
                state: 'queued',
                message: `scheduled run due ${new Date(r.scheduled_for ?? now).toISOString()}`,
              })),
            )
            .execute();
        }
        out.fired += inserted.length;
        const fired = new Set(inserted.map((r) => r.item_id));
        for (const step of mine) {
          if (step.fire !== null && !fired.has(step.itemId))
            await this.resolveConflict(trx, step, step.fire, now, out, cancelling);
        }
      });
    }
    if (out.fired) this.catalog.notices?.publish({ kind: 'queued' });
    for (const jobId of cancelling) this.catalog.notices?.publish({ kind: 'cancel', jobId });
    return out;
  }

  /** Moves each item's cursor from the due time the decision was made on; returns the items this caller owns. */
  private async advanceCursors(trx: Db, steps: ScheduleStep[], now: number): Promise<Set<string>> {
    const owned = new Set<string>();
    const creating = steps.filter((s) => s.fromDue === null);
    if (creating.length) {
      const rows = await trx
        .insertInto('schedule_cursors')
        .values(
          creating.map((s) => ({
            item_id: s.itemId,
            policy_id: s.policy.id,
            next_due_at: s.nextDue,
            fire_at: s.nextFireAt,
            updated_at: now,
          })),
        )
        .onConflict((oc) =>
          oc.column('item_id').doUpdateSet((eb) => ({
            policy_id: eb.ref('excluded.policy_id'),
            next_due_at: eb.ref('excluded.next_due_at'),
            fire_at: eb.ref('excluded.fire_at'),
            updated_at: eb.ref('excluded.updated_at'),
          })),
        )
        .returning('item_id')
        .execute();
      for (const r of rows) owned.add(r.item_id);
    }
    const groups = new Map<string, ScheduleStep[]>();
    for (const s of steps) {
      if (s.fromDue === null) continue;
      const key = `${s.fromDue}:${s.nextDue}:${s.nextFireAt}`;
      const g = groups.get(key);
      if (g) g.push(s);
      else groups.set(key, [s]);
    }
    for (const g of groups.values()) {
      const first = g[0]!;
      const rows = await trx
        .updateTable('schedule_cursors')
        .set({ next_due_at: first.nextDue, fire_at: first.nextFireAt, updated_at: now })
        .where('next_due_at', '=', first.fromDue!)
        .where(
          'item_id',
          'in',
          g.map((s) => s.itemId),
        )
        .returning('item_id')
        .execute();
      for (const r of rows) owned.add(r.item_id);
    }
    return owned;
  }

  private async recordMissed(trx: Db, step: ScheduleStep, now: number, out: ScheduleOutcome): Promise<void> {
    const base = scheduledRow(step, now);
    const m = step.missed!;
    const added = await trx
      .insertInto('jobs')
      .values({
        ...base,
        id: newId('j', now),
        state: 'skipped',
        scheduled_for: m.first,
        ended_at: now,
        error_code: 'ScheduledRunMissed',
        error_message:
          m.count === 1
            ? `the run due ${new Date(m.first).toISOString()} was missed while no coffer server was running`
            : `${m.count} runs due ${new Date(m.first).toISOString()} to ${new Date(m.last).toISOString()} were missed while no coffer server was running`,
      })
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    if (added) {
      out.missed++;
      await addEvent(trx, added.id, 'skipped', now, 'missed while no server was running');
    }
  }

  /** A run whose insert conflicted: already fired elsewhere, or blocked by an active job (overlap policy). */
  private async resolveConflict(
    trx: Db,
    step: ScheduleStep,
    due: number,
    now: number,
    out: ScheduleOutcome,
    cancelling?: string[],
  ): Promise<void> {
    const base = scheduledRow(step, now);
    const id = newId('j', now);
    const existing = await trx
      .selectFrom('jobs')
      .select('id')
      .where('item_id', '=', step.itemId)
      .where('scheduled_for', '=', due)
      .executeTakeFirst();
    if (existing) {
      out.alreadyDone++;
      return;
    }
    const blockingRow = await trx
      .selectFrom('jobs')
      .selectAll()
      .where('item_id', '=', step.itemId)
      .where('operation', 'in', [...EXCLUSIVE_OPERATIONS])
      .where('state', 'in', [...ACTIVE_STATES])
      .executeTakeFirst();
    if (!blockingRow) return; // a conflict we cannot explain is left for the next tick
    const blocking = toJob(blockingRow);
    const vaultName =
      (await trx.selectFrom('vaults').select('name').where('id', '=', blocking.vaultId).executeTakeFirst())
        ?.name ?? blocking.vaultId;
    const why = `job ${blocking.id} (${blocking.operation}, ${blocking.state}, ${describeTrigger(blocking)}) in vault '${vaultName}' is still active`;
    const skip = async (reason: string) => {
      const skipped = await trx
        .insertInto('jobs')
        .values({
          ...base,
          id,
          state: 'skipped',
          scheduled_for: due,
          ended_at: now,
          error_code: 'UserErrorBackupOperationInProgress',
          error_message: `${reason}: ${why}`,
          params: JSON.stringify({ blockingJobId: blocking.id, overlap: step.policy.overlap }),
        })
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .executeTakeFirst();
      if (skipped) {
        out.skipped++;
        await addEvent(trx, id, 'skipped', now, `${reason}: ${why}`);
      }
    };
    const defer = async (reason: string): Promise<boolean> => {
      const deferred = await trx
        .insertInto('jobs')
        .values({
          ...base,
          id,
          state: 'deferred',
          scheduled_for: due,
          params: JSON.stringify({ blockingJobId: blocking.id, overlap: step.policy.overlap }),
        })
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .executeTakeFirst();
      if (deferred) {
        out.deferred++;
        await addEvent(trx, id, 'deferred', now, `${reason}: ${why}`);
      }
      return deferred !== undefined;
    };
    /** Ends the item's scheduled runs in `state` (one of them when `id` is given) as replaced. */
    const replaceScheduled = async (state: 'queued' | 'deferred', id: string | null) => {
      const replaced = await trx
        .updateTable('jobs')
        .set(
          cancelledBeforeStart(
            now,
            `replaced by the run due ${new Date(due).toISOString()} (overlap policy cancel-running)`,
          ),
        )
        .where('item_id', '=', step.itemId)
        .where('state', '=', state)
        .where('trigger', '=', 'schedule')
        .$if(id !== null, (qb) => qb.where('id', '=', id!))
        .returning('id')
        .execute();
      for (const r of replaced)
        await addEvent(trx, r.id, 'cancelled', now, 'replaced by a newer scheduled run (cancel-running)');
    };
    switch (step.policy.overlap) {
      case 'skip':
        return skip('skipped (overlap policy skip)');
      case 'queue-one':
        if (!(await defer('waiting for the active job (overlap policy queue-one)')))
          await skip('skipped: a run is already waiting (overlap policy queue-one)');
        return;
      case 'cancel-running':
        if (blocking.trigger !== 'schedule')
          return skip('skipped: cancel-running never cancels an on-demand run');
        if (blocking.state === 'queued') {
          await replaceScheduled('queued', blocking.id);
        } else if (blocking.state === 'in_progress') {
          await trx
            .updateTable('jobs')
            .set({ state: 'cancelling', cancel_requested_at: now, updated_at: now })
            .where('id', '=', blocking.id)
            .where('state', '=', 'in_progress')
            .execute();
          await addEvent(
            trx,
            blocking.id,
            'cancelling',
            now,
            'cancelled by a newer scheduled run (cancel-running)',
          );
          cancelling?.push(blocking.id);
        }
        out.cancelled++;
        // The newest due run is the one that should start: a run still waiting from an earlier
        // due time is replaced rather than the new one skipped.
        await replaceScheduled('deferred', null);
        if (!(await defer('starts when the cancelled run has stopped (overlap policy cancel-running)')))
          await skip('skipped: a run is already waiting');
        return;
    }
  }

  /** Starts deferred runs whose item is free again; the exclusivity index decides each one. */
  async promoteDeferred(): Promise<number> {
    const now = this.clock.now();
    const ready = await this.db
      .selectFrom('jobs as d')
      .select(['d.id'])
      .where('d.state', '=', 'deferred')
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('jobs as a')
              .select('a.id')
              .whereRef('a.item_id', '=', 'd.item_id')
              .where('a.operation', 'in', [...EXCLUSIVE_OPERATIONS])
              .where('a.state', 'in', [...ACTIVE_STATES]),
          ),
        ),
      )
      .orderBy('d.created_at')
      .limit(1000)
      .execute();
    let promoted = 0;
    for (const r of ready) {
      try {
        await this.catalog.writeTx(async (trx) => {
          const res = await trx
            .updateTable('jobs')
            .set({ state: 'queued', updated_at: now })
            .where('id', '=', r.id)
            .where('state', '=', 'deferred')
            .executeTakeFirst();
          if (Number(res.numUpdatedRows)) {
            promoted++;
            await addEvent(trx, r.id, 'queued', now, 'the blocking job ended; starting the waiting run');
          }
        });
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
    }
    if (promoted) this.catalog.notices?.publish({ kind: 'queued' });
    return promoted;
  }

  // ---------------------------------------------------------------- insights

  /** What insights read: items with their policy, recent backup jobs, and active jobs. */
  async insightData(since: number): Promise<{
    items: (Item & { vaultName: string; policy: Policy | null })[];
    recent: Job[];
    active: Job[];
  }> {
    const items = await this.db
      .selectFrom('items')
      .innerJoin('vaults', 'vaults.id', 'items.vault_id')
      .selectAll('items')
      .select('vaults.name as vault_name')
      .orderBy('items.name')
      .execute();
    const policies = new Map((await this.listPolicies()).map((p) => [p.id, p]));
    const recent = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('operation', '=', 'backup')
      .where('created_at', '>=', since)
      .orderBy('id', 'desc')
      .limit(50_000)
      .execute();
    const active = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('state', 'in', [...ACTIVE_STATES])
      .execute();
    return {
      items: items.map((r) => ({
        ...toItem(r),
        vaultName: r.vault_name,
        policy: r.policy_id ? (policies.get(r.policy_id) ?? null) : null,
      })),
      recent: recent.map(toJob),
      active: active.map(toJob),
    };
  }

  // ---------------------------------------------------------------- reads

  async getJob(jobId: string): Promise<Job> {
    return this.jobIn(this.db, jobId);
  }

  private async jobIn(db: Db, jobId: string): Promise<Job> {
    const row = await db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
    if (!row) throw new CofferError('JobNotFound', `no job with id '${jobId}'`, { jobId });
    return toJob(row);
  }

  async listJobs(f: JobFilter): Promise<Job[]> {
    let q = this.db.selectFrom('jobs').selectAll();
    if (f.vaultId) q = q.where('vault_id', '=', f.vaultId);
    if (f.itemId) q = q.where('item_id', '=', f.itemId);
    if (f.states?.length) q = q.where('state', 'in', f.states);
    if (f.operations?.length) q = q.where('operation', 'in', f.operations);
    if (f.since !== undefined) q = q.where('created_at', '>=', f.since);
    if (f.until !== undefined) q = q.where('created_at', '<', f.until);
    // Ids are time-ordered, so the id alone is a stable cursor.
    if (f.before) q = q.where('id', '<', f.before);
    const rows = await q
      .orderBy('id', 'desc')
      .limit(f.limit ?? 50)
      .execute();
    return rows.map(toJob);
  }

  async listEvents(jobId: string): Promise<JobEvent[]> {
    const rows = await this.db
      .selectFrom('job_events')
      .select(['at', 'state', 'message'])
      .where('job_id', '=', jobId)
      .orderBy('at')
      .orderBy('id')
      .execute();
    return rows;
  }

  async listPoints(itemId: string, vaultId?: string): Promise<RecoveryPoint[]> {
    let q = this.db.selectFrom('recovery_points').selectAll().where('item_id', '=', itemId);
    if (vaultId) q = q.where('vault_id', '=', vaultId);
    return (await q.orderBy('snapshot_time', 'desc').execute()).map(toPoint);
  }

  async getPoint(id: string): Promise<RecoveryPoint> {
    const row = await this.db
      .selectFrom('recovery_points')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new CofferError('PointNotFound', `no recovery point with id '${id}'`, { point: id });
    return toPoint(row);
  }

  async latestPoint(itemId: string, vaultId: string): Promise<RecoveryPoint | null> {
    const row = await this.db
      .selectFrom('recovery_points')
      .selectAll()
      .where('item_id', '=', itemId)
      .where('vault_id', '=', vaultId)
      .orderBy('snapshot_time', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toPoint(row) : null;
  }

  async countActiveExclusive(itemId: string): Promise<number> {
    const row = await this.db
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('item_id', '=', itemId)
      .where('operation', 'in', [...EXCLUSIVE_OPERATIONS])
      .where('state', 'in', [...ACTIVE_STATES])
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

/** The row of a queued or waiting job ended by a cancel: nobody holds it, so it never starts. */
function cancelledBeforeStart(now: number, message: string) {
  return {
    state: 'cancelled',
    ended_at: now,
    updated_at: now,
    cancel_requested_at: now,
    error_code: 'JobCancelled',
    error_message: message,
  } as const;
}

async function addEvent(
  trx: Db,
  jobId: string,
  state: string,
  at: number,
  message: string | null,
): Promise<void> {
  await trx
    .insertInto('job_events')
    .values({ id: newId('e', at), job_id: jobId, at, state, message })
    .execute();
}

function describeAdmission(req: AdmissionRequest): string {
  const by = req.requestedBy ? ` by ${req.requestedBy}` : '';
  return req.trigger === 'retry' ? `retry of ${req.retryOf}${by}` : `${req.trigger}${by}`;
}

function pointRow(p: RecoveryPointDraft, jobId: string, now: number): RecoveryPointTable {
  return {
    id: p.id,
    item_id: p.itemId,
    vault_id: p.vaultId,
    job_id: jobId,
    parent_id: p.parentId,
    source_path: p.sourcePath,
    files: p.files,
    bytes_scanned: p.bytesScanned,
    bytes_new: p.bytesNew,
    bytes_stored: p.bytesStored,
    snapshot_time: p.snapshotTime,
    created_at: now,
  };
}

function progressColumns(p: JobProgress): Updateable<JobTable> {
  return {
    files_done: p.filesDone,
    files_total: p.filesTotal,
    bytes_done: p.bytesDone,
    bytes_total: p.bytesTotal,
    bytes_scanned: p.bytesScanned,
    bytes_new: p.bytesNew,
    bytes_stored: p.bytesStored,
    eta_seconds: p.etaSeconds,
  };
}

function scheduledRow(step: ScheduleStep, now: number) {
  return {
    operation: 'backup',
    item_id: step.itemId,
    vault_id: step.vaultId,
    trigger: 'schedule',
    requested_by: `policy:${step.policy.name}`,
    params: JSON.stringify(
      step.policy.limitReadBytesPerSec ? { limitReadBytesPerSec: step.policy.limitReadBytesPerSec } : {},
    ),
    created_at: now,
    updated_at: now,
  };
}

function policyRow(p: PolicyInput) {
  return {
    name: p.name,
    schedule: p.schedule,
    timezone: p.timezone,
    jitter_seconds: p.jitterSeconds,
    retention: JSON.stringify(p.retention),
    overlap: p.overlap,
    catch_up_seconds: Math.round(p.catchUpMs / 1000),
    paused: p.paused ? 1 : 0,
    limit_read_bytes_per_sec: p.limitReadBytesPerSec,
  };
}

function toPolicy(r: Selectable<Database['policies']>): Policy {
  return {
    id: r.id,
    name: r.name,
    schedule: r.schedule,
    timezone: r.timezone,
    jitterSeconds: r.jitter_seconds,
    retention: JSON.parse(r.retention) as Record<string, number>,
    overlap: r.overlap as OverlapPolicy,
    catchUpMs: r.catch_up_seconds * 1000,
    paused: r.paused === 1,
    limitReadBytesPerSec: r.limit_read_bytes_per_sec,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toToken(r: Selectable<Database['api_tokens']>): ApiToken {
  return {
    id: r.id,
    name: r.name,
    role: r.role as Role,
    createdAt: r.created_at,
    createdBy: r.created_by,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

function toVault(r: Selectable<Database['vaults']>): Vault {
  return {
    id: r.id,
    name: r.name,
    location: r.location,
    repositoryId: r.repository_id,
    createdAt: r.created_at,
  };
}

function toItem(r: Selectable<Database['items']>): Item {
  return {
    id: r.id,
    name: r.name,
    vaultId: r.vault_id,
    sourcePath: r.source_path,
    policyId: r.policy_id,
    previousVaultId: r.previous_vault_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toPoint(r: Selectable<RecoveryPointTable>): RecoveryPoint {
  return {
    id: r.id,
    itemId: r.item_id,
    vaultId: r.vault_id,
    jobId: r.job_id,
    parentId: r.parent_id,
    sourcePath: r.source_path,
    files: r.files,
    bytesScanned: r.bytes_scanned,
    bytesNew: r.bytes_new,
    bytesStored: r.bytes_stored,
    snapshotTime: r.snapshot_time,
    createdAt: r.created_at,
  };
}

function toJob(r: Selectable<JobTable>): Job {
  return {
    id: r.id,
    operation: r.operation as Operation,
    state: r.state as JobState,
    itemId: r.item_id,
    vaultId: r.vault_id,
    trigger: r.trigger as TriggerKind,
    retryOf: r.retry_of,
    requestedBy: r.requested_by,
    scheduledFor: r.scheduled_for,
    idempotencyKey: r.idempotency_key,
    params: JSON.parse(r.params) as Record<string, unknown>,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    updatedAt: r.updated_at,
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    fencingToken: r.fencing_token,
    workerId: r.worker_id,
    cancelRequestedAt: r.cancel_requested_at,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    warnings: JSON.parse(r.warnings) as string[],
    recoveryPointId: r.recovery_point_id,
    result: JSON.parse(r.result) as Record<string, unknown>,
    filesDone: r.files_done,
    filesTotal: r.files_total,
    bytesDone: r.bytes_done,
    bytesTotal: r.bytes_total,
    bytesScanned: r.bytes_scanned,
    bytesNew: r.bytes_new,
    bytesStored: r.bytes_stored,
    etaSeconds: r.eta_seconds,
  };
}
