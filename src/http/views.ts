/** JSON shapes of catalog objects over HTTP; names are resolved in bulk for lists. */
import type { AppContext } from '../app/context.js';
import { jobJson, type JobJson } from '../app/job-view.js';
import type { PointRetention } from '../app/retention.js';
import type { ApiToken, Item, ItemSummary, RecoveryPoint, Vault, VaultSummary } from '../catalog/store.js';
import type { Job } from '../jobs/job.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export async function jobsOut(app: AppContext, jobs: Job[]): Promise<JobJson[]> {
  const [items, vaults] = await Promise.all([app.store.listItems(), app.store.listVaults()]);
  const itemNames = new Map(items.map((i) => [i.id, i.name]));
  const vaultNames = new Map(vaults.map((v) => [v.id, v.name]));
  return jobs.map((j) =>
    jobJson(j, { itemName: j.itemId ? itemNames.get(j.itemId) : null, vaultName: vaultNames.get(j.vaultId) }),
  );
}

/**
 * Names by id. Vault and item names never change (there is no rename), so a process-wide cache
 * is always right and saves two reads per job rendered.
 */
const names = new Map<string, string>();

export function rememberName(id: string, name: string): void {
  if (names.size > 50_000) names.clear();
  names.set(id, name);
}

async function nameOf(app: AppContext, id: string, kind: 'item' | 'vault'): Promise<string | null> {
  const known = names.get(id);
  if (known !== undefined) return known;
  const found =
    kind === 'item'
      ? await app.store.getItem(id).catch(() => null)
      : await app.store.getVault(id).catch(() => null);
  if (found) rememberName(id, found.name);
  return found?.name ?? null;
}

export async function jobOut(app: AppContext, job: Job): Promise<JobJson> {
  const itemName = job.itemId ? await nameOf(app, job.itemId, 'item') : null;
  return jobJson(job, { itemName, vaultName: await nameOf(app, job.vaultId, 'vault') });
}

export function vaultOut(v: Vault | VaultSummary) {
  return { ...v, createdAt: new Date(v.createdAt).toISOString() };
}

export function itemOut(i: Item | ItemSummary) {
  const summary = 'vaultName' in i ? i : null;
  return {
    id: i.id,
    name: i.name,
    vaultId: i.vaultId,
    previousVaultId: i.previousVaultId,
    policyId: i.policyId,
    sourcePath: i.sourcePath,
    createdAt: new Date(i.createdAt).toISOString(),
    updatedAt: new Date(i.updatedAt).toISOString(),
    ...(summary
      ? {
          vaultName: summary.vaultName,
          lastJob: summary.lastJob ? { ...summary.lastJob, endedAt: iso(summary.lastJob.endedAt) } : null,
          lastPoint: summary.lastPoint
            ? {
                id: summary.lastPoint.id,
                snapshotTime: new Date(summary.lastPoint.snapshotTime).toISOString(),
              }
            : null,
        }
      : {}),
  };
}

export function pointOut(p: RecoveryPoint, vaultName: string | null, retention: PointRetention) {
  return {
    id: p.id,
    itemId: p.itemId,
    vaultId: p.vaultId,
    vaultName,
    jobId: p.jobId,
    parentId: p.parentId,
    sourcePath: p.sourcePath,
    files: p.files,
    bytesScanned: p.bytesScanned,
    bytesNew: p.bytesNew,
    bytesStored: p.bytesStored,
    snapshotTime: new Date(p.snapshotTime).toISOString(),
    retention,
  };
}

export function tokenOut(t: ApiToken, secret?: string) {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    createdAt: new Date(t.createdAt).toISOString(),
    createdBy: t.createdBy,
    lastUsedAt: iso(t.lastUsedAt),
    revokedAt: iso(t.revokedAt),
    ...(secret ? { token: secret } : {}),
  };
}
