/** Use cases for policies (schedule, retention, overlap) and assigning them to items. */
import type { Item, Policy, PolicyInput } from '../catalog/store.js';
import { CofferError } from '../errors/coffer-error.js';
import { RETENTION_RULES } from '../scheduler/retention.js';
import { isOverlapPolicy, OVERLAP_POLICIES, validateSchedule } from '../scheduler/schedule.js';
import type { AppContext } from './context.js';
import { validateName } from './vaults.js';

export { RETENTION_RULES };

export const DEFAULT_CATCH_UP_MS = 3600_000;

export function defaultTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** Checks a whole policy; every problem is an InvalidRequest naming its field. */
export function validatePolicy(p: PolicyInput): PolicyInput {
  validateName('item', p.name);
  validateSchedule(p.schedule, p.timezone);
  if (!isOverlapPolicy(p.overlap)) {
    throw new CofferError(
      'InvalidRequest',
      `overlap policy must be one of ${OVERLAP_POLICIES.join(', ')} (got '${p.overlap}')`,
      { field: 'overlap' },
    );
  }
  if (!Number.isInteger(p.jitterSeconds) || p.jitterSeconds < 0 || p.jitterSeconds > 86_400) {
    throw new CofferError('InvalidRequest', 'jitter must be between 0 and 24 hours', { field: 'jitter' });
  }
  if (!Number.isFinite(p.catchUpMs) || p.catchUpMs < 0 || p.catchUpMs > 30 * 86_400_000) {
    throw new CofferError('InvalidRequest', 'the catch-up window must be between 0 and 30 days', {
      field: 'catchUp',
    });
  }
  if (
    p.limitReadBytesPerSec !== null &&
    (!Number.isInteger(p.limitReadBytesPerSec) || p.limitReadBytesPerSec < 1024)
  ) {
    throw new CofferError('InvalidRequest', 'the read limit must be at least 1K bytes per second', {
      field: 'limitRead',
    });
  }
  for (const [rule, n] of Object.entries(p.retention)) {
    if (!(RETENTION_RULES as readonly string[]).includes(rule)) {
      throw new CofferError(
        'InvalidRequest',
        `unknown retention rule '${rule}'; use ${RETENTION_RULES.join(', ')}`,
        { field: `retention.${rule}` },
      );
    }
    if (!Number.isInteger(n) || n < 0 || n > 100_000) {
      throw new CofferError('InvalidRequest', `retention ${rule} must be a whole number from 0 to 100000`, {
        field: `retention.${rule}`,
      });
    }
  }
  return p;
}

export async function createPolicy(app: AppContext, input: PolicyInput, actor: string): Promise<Policy> {
  const p = await app.store.createPolicy(validatePolicy(input));
  await app.store.audit(actor, 'policy.create', p.id, {
    name: p.name,
    schedule: p.schedule,
    overlap: p.overlap,
  });
  return p;
}

export async function updatePolicy(
  app: AppContext,
  ref: string,
  patch: Partial<PolicyInput>,
  actor: string,
): Promise<Policy> {
  const current = await app.store.getPolicy(ref);
  const merged: PolicyInput = {
    ...current,
    ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
  };
  const p = await app.store.updatePolicy(current.id, validatePolicy(merged));
  await app.store.audit(actor, 'policy.update', p.id, { ...patch });
  return p;
}

export async function deletePolicy(app: AppContext, ref: string, actor: string): Promise<void> {
  const p = await app.store.getPolicy(ref);
  await app.store.deletePolicy(p.id);
  await app.store.audit(actor, 'policy.delete', p.id, { name: p.name });
}

export async function setItemPolicy(
  app: AppContext,
  itemRef: string,
  policyRef: string | null,
  actor: string,
): Promise<Item> {
  const item = await app.store.getItem(itemRef);
  const policy = policyRef ? await app.store.getPolicy(policyRef) : null;
  const updated = await app.store.setItemPolicy(item.id, policy?.id ?? null);
  await app.store.audit(actor, 'item.set-policy', item.id, { policy: policy?.name ?? null });
  return updated;
}
