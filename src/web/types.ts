/** Names for the API's shapes, taken from the generated api-types.ts (never written by hand). */
import type { paths } from './api-types';

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;

export type JobList = Json<paths['/api/v1/jobs']['get']['responses'][200]>;
export type Job = JobList['jobs'][number];
export type JobDetail = Json<paths['/api/v1/jobs/{id}']['get']['responses'][200]>;
export type JobState = Job['state'];
export type Operation = Job['operation'];
export type Vault = Json<paths['/api/v1/vaults']['get']['responses'][200]>[number];
export type Item = Json<paths['/api/v1/items']['get']['responses'][200]>[number];
export type ItemDetail = Json<paths['/api/v1/items/{item}']['get']['responses'][200]>;
export type Point = Json<paths['/api/v1/items/{item}/points']['get']['responses'][200]>[number];
export type Policy = Json<paths['/api/v1/policies']['get']['responses'][200]>[number];
export type PolicyCreate = Json<paths['/api/v1/policies']['post']['requestBody']>;
export type PolicyPatch = Json<paths['/api/v1/policies/{policy}']['patch']['requestBody']>;
export type Insight = Json<paths['/api/v1/insights']['get']['responses'][200]>[number];
export type Article = Json<paths['/api/v1/errors/{code}']['get']['responses'][200]>;
export type Whoami = Json<paths['/api/v1/whoami']['get']['responses'][200]>;
export type Role = Whoami['role'];

/** The `progress` event of a job's stream (the route streams text, so it has no schema). */
export type ProgressEvent = Pick<Job, 'id' | 'state' | 'progress' | 'bytesNew' | 'bytesStored'>;

// Records keyed by every state and operation the API declares: when the API gains or loses
// one, this file stops compiling instead of the dashboard silently missing a filter.
const STATE_KEYS: Record<JobState, true> = {
  queued: true,
  in_progress: true,
  cancelling: true,
  completed: true,
  completed_with_warnings: true,
  failed: true,
  cancelled: true,
  skipped: true,
  deferred: true,
};
const OPERATION_KEYS: Record<Operation, true> = {
  backup: true,
  restore: true,
  prune: true,
  check: true,
  'delete-data': true,
};
export const JOB_STATES = Object.keys(STATE_KEYS) as readonly JobState[];
export const OPERATIONS = Object.keys(OPERATION_KEYS) as readonly Operation[];
export const ACTIVE: readonly JobState[] = ['queued', 'in_progress', 'cancelling'];
export const RETRYABLE: readonly JobState[] = ['failed', 'cancelled', 'skipped'];

export const isActive = (s: string): boolean => (ACTIVE as readonly string[]).includes(s);
export const isRetryable = (s: string): boolean => (RETRYABLE as readonly string[]).includes(s);

const RANK: Record<Role, number> = { reader: 0, operator: 1, admin: 2 };
export const roleAllows = (held: Role, needed: Role): boolean => RANK[held] >= RANK[needed];
