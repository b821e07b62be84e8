/**
 * The public JSON shape of a registered worker, shared by `coffer worker list --json` and
 * `GET /api/v1/workers`, so scripts see the same field names everywhere.
 */
import type { WorkerRecord } from '../catalog/store.js';
import { progressPercent } from '../jobs/job.js';
import type { AppContext } from './context.js';

export interface WorkerHeldJobJson {
  id: string;
  operation: string;
  state: string;
  item: { id: string; name: string | null } | null;
  vault: { id: string; name: string | null };
  /** The lease owner: the worker id, plus `#slot` when the worker runs several jobs. */
  slot: string;
  leaseExpiresAt: string | null;
  startedAt: string | null;
  progressPercent: number | null;
}

export interface WorkerJson {
  id: string;
  host: string;
  pid: number;
  kind: 'serve' | 'worker';
  version: string;
  concurrency: number;
  startedAt: string;
  heartbeatAt: string;
  heartbeatSeconds: number;
  state: 'live' | 'lost';
  jobs: WorkerHeldJobJson[];
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** Registered workers with the jobs they hold, item and vault names resolved in bulk. */
export async function listWorkersJson(
  app: AppContext,
  opts: { includeLost: boolean },
): Promise<WorkerJson[]> {
  const workers = await app.store.listWorkers(opts);
  const anyJobs = workers.some((w) => w.jobs.length > 0);
  const [items, vaults] = anyJobs
    ? await Promise.all([app.store.listItems(), app.store.listVaults()])
    : [[], []];
  const itemNames = new Map(items.map((i) => [i.id, i.name]));
  const vaultNames = new Map(vaults.map((v) => [v.id, v.name]));
  return workers.map((w: WorkerRecord) => ({
    id: w.id,
    host: w.host,
    pid: w.pid,
    kind: w.kind,
    version: w.version,
    concurrency: w.concurrency,
    startedAt: new Date(w.startedAt).toISOString(),
    heartbeatAt: new Date(w.heartbeatAt).toISOString(),
    heartbeatSeconds: w.heartbeatMs / 1000,
    state: w.state,
    jobs: w.jobs.map((j) => ({
      id: j.id,
      operation: j.operation,
      state: j.state,
      item: j.itemId ? { id: j.itemId, name: itemNames.get(j.itemId) ?? null } : null,
      vault: { id: j.vaultId, name: vaultNames.get(j.vaultId) ?? null },
      slot: j.leaseOwner ?? w.id,
      leaseExpiresAt: iso(j.leaseExpiresAt),
      startedAt: iso(j.startedAt),
      progressPercent: progressPercent(j),
    })),
  }));
}
