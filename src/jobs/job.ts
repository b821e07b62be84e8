/**
 * The job model of the domain core: operations, states and the exclusivity rule's vocabulary
 * (SPEC §2). Nothing here knows how jobs are stored or shown.
 */
export const OPERATIONS = ['backup', 'restore', 'prune', 'check', 'delete-data'] as const;
export type Operation = (typeof OPERATIONS)[number];

export const JOB_STATES = [
  'queued',
  'in_progress',
  'cancelling',
  'completed',
  'completed_with_warnings',
  'failed',
  'cancelled',
  'skipped',
  // A scheduled run waiting (overlap policy queue-one) for the item's active job to end. Not
  // active: it holds nothing, and becomes `queued` only through the exclusivity index.
  'deferred',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/** States that hold an item under the exclusivity rule. */
export const ACTIVE_STATES = ['queued', 'in_progress', 'cancelling'] as const satisfies readonly JobState[];
/** States a worker holds under a lease. */
export const LEASED_STATES = ['in_progress', 'cancelling'] as const satisfies readonly JobState[];
/** Operations of which at most one may be active per item id, across all vaults. */
export const EXCLUSIVE_OPERATIONS = ['backup', 'delete-data'] as const satisfies readonly Operation[];
/** Finished states from which an operator may start a new attempt. */
export const RETRYABLE_STATES = [
  'failed',
  'cancelled',
  'skipped',
  'completed_with_warnings',
] as const satisfies readonly JobState[];

export type TriggerKind = 'on-demand' | 'schedule' | 'retry';

export function isActive(state: JobState): boolean {
  return (ACTIVE_STATES as readonly JobState[]).includes(state);
}

export function isTerminal(state: JobState): boolean {
  return !isActive(state) && state !== 'deferred';
}

export function isOperation(value: string): value is Operation {
  return (OPERATIONS as readonly string[]).includes(value);
}

export function isJobState(value: string): value is JobState {
  return (JOB_STATES as readonly string[]).includes(value);
}

/** Counters a running job reports and a finished job keeps. */
export interface JobProgress {
  filesDone: number;
  filesTotal: number | null;
  bytesDone: number;
  bytesTotal: number | null;
  bytesScanned: number;
  bytesNew: number;
  bytesStored: number;
  etaSeconds: number | null;
}

export interface Job extends JobProgress {
  id: string;
  operation: Operation;
  state: JobState;
  itemId: string | null;
  vaultId: string;
  trigger: TriggerKind;
  retryOf: string | null;
  requestedBy: string | null;
  /** The due time a scheduled run was for; unique per item. */
  scheduledFor: number | null;
  idempotencyKey: string | null;
  /** Operation parameters, e.g. a restore's target and point. */
  params: Record<string, unknown>;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  /** Last change; a running job's heartbeat renews it. */
  updatedAt: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  fencingToken: number;
  /** The worker that last held the job; kept after it ends. */
  workerId: string | null;
  cancelRequestedAt: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  warnings: string[];
  recoveryPointId: string | null;
  /** What a finished job reports beyond the counters (e.g. a prune's points forgotten and bytes freed). */
  result: Record<string, unknown>;
}

/** How the jobs view names what started a job: `on-demand`, `schedule`, `retry of <job>`. */
export function describeTrigger(job: Pick<Job, 'trigger' | 'retryOf'>): string {
  return job.trigger === 'retry' && job.retryOf ? `retry of ${job.retryOf}` : job.trigger;
}

export function progressPercent(p: Pick<JobProgress, 'bytesDone' | 'bytesTotal'>): number | null {
  if (p.bytesTotal === null || p.bytesTotal <= 0) return null;
  return Math.min(100, Math.floor((p.bytesDone / p.bytesTotal) * 1000) / 10);
}

export function durationMs(job: Pick<Job, 'startedAt' | 'endedAt'>, now: number): number | null {
  if (job.startedAt === null) return null;
  return (job.endedAt ?? now) - job.startedAt;
}
