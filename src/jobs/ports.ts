/**
 * What the domain core needs from a catalog. The catalog adapter implements these atomically
 * (SPEC §2: the exclusivity rule, leases and fencing are enforced by the store, never by a
 * check-then-insert here).
 */
import type { Job, JobProgress, Operation, TriggerKind } from './job.js';

/** Proof that a worker holds a job: the fencing token moves on whenever the lease is taken away. */
export interface Lease {
  jobId: string;
  owner: string;
  token: number;
}

export interface AdmissionRequest {
  operation: Operation;
  itemId: string | null;
  vaultId: string;
  trigger: TriggerKind;
  retryOf?: string | null;
  requestedBy?: string | null;
  idempotencyKey?: string | null;
  params?: Record<string, unknown>;
  /** Admit straight into `in_progress` under a lease held by this owner (a foreground CLI run). */
  claimBy?: { owner: string; leaseMs: number };
}

export interface Admission {
  job: Job;
  /** Present when the request asked to claim the job and it was newly created. */
  lease: Lease | null;
  /** True when an idempotency key matched an existing job and no new job was created. */
  reused: boolean;
}

export interface HeartbeatResult {
  /** False once the lease expired or was taken: the worker must stop and commit nothing. */
  held: boolean;
  cancelRequested: boolean;
}

export interface RecoveryPointDraft {
  id: string;
  itemId: string;
  vaultId: string;
  parentId: string | null;
  sourcePath: string;
  files: number;
  bytesScanned: number;
  bytesNew: number;
  bytesStored: number;
  snapshotTime: number;
}

export type FinishState = 'completed' | 'completed_with_warnings' | 'failed' | 'cancelled';

export interface FinishRequest {
  state: FinishState;
  progress: JobProgress;
  errorCode?: string | null;
  errorMessage?: string | null;
  warnings?: string[];
  result?: Record<string, unknown>;
  /** Committed in the same transaction as the state change, only while the lease is held. */
  recoveryPoint?: RecoveryPointDraft;
}

export interface FinishOutcome {
  /** The state the job actually ended in: a cancel requested meanwhile turns a success into `cancelled`. */
  state: FinishState;
  recoveryPointCommitted: boolean;
}

export interface JobStore {
  admit(req: AdmissionRequest): Promise<Admission>;
  /** Claims the oldest queued job, if any, under a new lease. */
  claimNext(owner: string, leaseMs: number): Promise<{ job: Job; lease: Lease } | null>;
  /** Renews the lease and records progress; tells the worker whether it still holds the job. */
  heartbeat(lease: Lease, progress: JobProgress, leaseMs: number): Promise<HeartbeatResult>;
  /** Ends a job; throws CofferError('LeaseLost') when the lease is no longer held (fencing). */
  finish(lease: Lease, req: FinishRequest): Promise<FinishOutcome>;
  requestCancel(jobId: string): Promise<Job>;
  release(jobId: string, opts: { force: boolean; reason?: string }): Promise<Job>;
  /** Ends every leased job whose lease expired; returns how many. */
  reapExpired(): Promise<number>;
  getJob(jobId: string): Promise<Job>;
}
