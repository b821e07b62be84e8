/**
 * Keeps a worker's lease alive while it works, and turns what the heartbeat learns into an
 * abort: a cancel request, or the loss of the lease (expired while paused, released by force,
 * catalog unreachable for longer than the lease). The work observes both through one
 * AbortSignal, checked between chunks.
 */
import type { Clock } from './clock.js';
import type { JobProgress } from './job.js';
import type { JobStore, Lease } from './ports.js';

export type StopReason = 'cancelled' | 'lease-lost';

export interface LeaseKeeperOptions {
  store: JobStore;
  lease: Lease;
  leaseMs: number;
  clock: Clock;
  /** How often the keeper heartbeats; also bounds how long a cancel takes to be seen. */
  intervalMs?: number;
  progress: () => JobProgress;
}

export class LeaseKeeper {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private beating = false;
  /** A beat was asked for while one was in flight: run another right after it. */
  private again = false;
  /** Until when we know the lease is ours: the last successful heartbeat plus the TTL. */
  private heldUntil: number;
  private stopReasonValue: StopReason | null = null;

  constructor(private readonly opts: LeaseKeeperOptions) {
    this.heldUntil = opts.clock.now() + opts.leaseMs;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get stopReason(): StopReason | null {
    return this.stopReasonValue;
  }

  start(): void {
    const interval = this.opts.intervalMs ?? Math.max(100, Math.min(500, Math.floor(this.opts.leaseMs / 6)));
    this.timer = setInterval(() => void this.beat(), interval);
    // A heartbeat timer must not keep a finished process alive.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Runs one heartbeat now; exposed so a caller can check the lease right before committing. */
  async beat(): Promise<void> {
    if (this.controller.signal.aborted) return;
    const startedAt = this.opts.clock.now();
    // Past our own view of the lease (e.g. the process was paused), stop before asking: the
    // fencing token may already have moved on. Checked even while a heartbeat is still in
    // flight: on a partitioned network a query can hang without ever failing, and the work
    // must stop when the lease runs out, not when the network returns.
    if (startedAt > this.heldUntil) {
      this.abort('lease-lost');
      return;
    }
    if (this.beating) {
      // The answer in flight may predate what the caller learned (e.g. a cancel notice).
      this.again = true;
      return;
    }
    this.beating = true;
    try {
      const res = await this.opts.store.heartbeat(this.opts.lease, this.opts.progress(), this.opts.leaseMs);
      if (!res.held) this.abort('lease-lost');
      else {
        this.heldUntil = startedAt + this.opts.leaseMs;
        if (res.cancelRequested) this.abort('cancelled');
      }
    } catch {
      // The catalog did not answer; keep working while the lease we last renewed still holds.
      if (this.opts.clock.now() > this.heldUntil) this.abort('lease-lost');
    } finally {
      this.beating = false;
    }
    if (this.again) {
      this.again = false;
      // Not once the keeper was stopped: the job has ended and holds no lease to renew.
      if (this.timer) await this.beat();
    }
  }

  abort(reason: StopReason): void {
    if (this.controller.signal.aborted) return;
    this.stopReasonValue = reason;
    this.controller.abort(reason);
  }
}
