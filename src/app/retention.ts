/**
 * Retention as the catalog sees it: each item's policy applied to its points, one vault at a
 * time (an item moved to another vault keeps its old points under its policy there too). Used
 * by `coffer point list` / GET /items/{item}/points to show why each point stays, and by the
 * prune job to decide what it forgets.
 */
import type { Item, Policy, RecoveryPoint } from '../catalog/store.js';
import {
  applyRetention,
  describeRetention,
  hasRetentionRules,
  type KeepReason,
} from '../scheduler/retention.js';
import type { AppContext } from './context.js';

export interface PointRetention {
  /** False when the next prune of the point's vault forgets it. */
  keep: boolean;
  /** The rules that keep the point, with the period it is the newest point of. */
  keptBy: KeepReason[];
  /** The item's policy, or null when it has none (then every point is kept). */
  policy: string | null;
  /** One line for people: "last #1, daily 2024-03-10", "no policy: kept", "forgotten at the next prune". */
  summary: string;
}

export function summarizeRetention(r: Omit<PointRetention, 'summary'>, hasRules: boolean): string {
  if (r.policy === null) return 'no policy: kept';
  if (!hasRules) return 'no retention rules: kept';
  if (!r.keep) return 'forgotten at the next prune';
  return r.keptBy.map((k) => `${k.rule} ${k.period}`).join(', ');
}

/** Retention of one item's points (any vaults), evaluated per vault under the item's policy. */
export function evaluateItemRetention(
  points: readonly RecoveryPoint[],
  policy: Policy | null,
): Map<string, PointRetention> {
  const out = new Map<string, PointRetention>();
  const byVault = new Map<string, RecoveryPoint[]>();
  for (const p of points) {
    const list = byVault.get(p.vaultId);
    if (list) list.push(p);
    else byVault.set(p.vaultId, [p]);
  }
  const rules = policy?.retention ?? {};
  const hasRules = policy !== null && hasRetentionRules(rules);
  for (const group of byVault.values()) {
    for (const d of applyRetention(group, rules, policy?.timezone ?? 'UTC')) {
      const r = { keep: d.keep, keptBy: d.reasons, policy: policy?.name ?? null };
      out.set(d.point.id, { ...r, summary: summarizeRetention(r, hasRules) });
    }
  }
  return out;
}

export async function itemRetention(
  app: AppContext,
  item: Item,
  points: readonly RecoveryPoint[],
): Promise<Map<string, PointRetention>> {
  const policy = item.policyId ? await app.store.getPolicy(item.policyId) : null;
  return evaluateItemRetention(points, policy);
}

export interface ItemRetentionPlan {
  itemId: string;
  itemName: string;
  policy: string | null;
  /** `last 3, daily 7`, or null when nothing is ever forgotten. */
  rules: string | null;
  kept: number;
  forget: RecoveryPoint[];
}

/** What retention forgets in one vault: per item with points there, its points that no rule keeps. */
export async function planVaultRetention(app: AppContext, vaultId: string): Promise<ItemRetentionPlan[]> {
  const points = await app.store.pointsInVault(vaultId);
  const byItem = new Map<string, RecoveryPoint[]>();
  for (const p of points) {
    const list = byItem.get(p.itemId);
    if (list) list.push(p);
    else byItem.set(p.itemId, [p]);
  }
  const policies = new Map<string, Policy>();
  const plans: ItemRetentionPlan[] = [];
  for (const [itemId, list] of byItem) {
    // Items are never deleted today; should one be, its points are kept (nothing says otherwise).
    const item = await app.store.getItem(itemId).catch(() => null);
    if (!item) {
      plans.push({ itemId, itemName: itemId, policy: null, rules: null, kept: list.length, forget: [] });
      continue;
    }
    let policy: Policy | null = null;
    if (item.policyId) {
      policy = policies.get(item.policyId) ?? (await app.store.getPolicy(item.policyId));
      policies.set(item.policyId, policy);
    }
    const decisions = evaluateItemRetention(list, policy);
    const forget = list.filter((p) => decisions.get(p.id)?.keep === false);
    plans.push({
      itemId,
      itemName: item.name,
      policy: policy?.name ?? null,
      rules: policy ? describeRetention(policy.retention) : null,
      kept: list.length - forget.length,
      forget,
    });
  }
  return plans.sort((a, b) => a.itemName.localeCompare(b.itemName));
}
