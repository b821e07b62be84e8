/**
 * Prometheus metrics (prom-client). Job counts by state come from the catalog at scrape time,
 * so every process reports the same cluster-wide view; the counters and histograms are what
 * this process itself did.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CatalogStore } from '../catalog/store.js';
import type { RunOutcome } from '../jobs/runner.js';
import type { Job } from '../jobs/job.js';

export class Metrics {
  readonly registry = new Registry();
  readonly admissions: Counter<'operation'>;
  readonly refusals: Counter<'code'>;
  readonly jobDuration: Histogram<'operation' | 'state'>;
  readonly bytes: Counter<'operation' | 'kind'>;
  readonly leaseExpiries: Counter;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly scheduled: Counter<'outcome'>;

  constructor(store: CatalogStore) {
    collectDefaultMetrics({ register: this.registry, prefix: 'coffer_' });
    this.admissions = new Counter({
      name: 'coffer_admissions_total',
      help: 'Jobs admitted by this process',
      labelNames: ['operation'],
      registers: [this.registry],
    });
    this.refusals = new Counter({
      name: 'coffer_admissions_refused_total',
      help: 'Triggers refused by this process, by error code',
      labelNames: ['code'],
      registers: [this.registry],
    });
    this.jobDuration = new Histogram({
      name: 'coffer_job_duration_seconds',
      help: 'Duration of jobs run by this process',
      labelNames: ['operation', 'state'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400],
      registers: [this.registry],
    });
    this.bytes = new Counter({
      name: 'coffer_bytes_processed_total',
      help: 'Bytes processed by jobs this process ran (kind: scanned, new, stored; freed by prunes)',
      labelNames: ['operation', 'kind'],
      registers: [this.registry],
    });
    this.leaseExpiries = new Counter({
      name: 'coffer_lease_expiries_total',
      help: 'Jobs this process ended because their lease expired (WorkerLost)',
      registers: [this.registry],
    });
    this.httpRequests = new Counter({
      name: 'coffer_http_requests_total',
      help: 'HTTP requests served',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.scheduled = new Counter({
      name: 'coffer_scheduled_runs_total',
      help: 'Scheduled runs this process decided, by outcome (fired, skipped, deferred, missed)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'coffer_jobs',
      help: 'Jobs in the catalog by state and operation',
      labelNames: ['state', 'operation'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const r of await store.countJobs()) this.set({ state: r.state, operation: r.operation }, r.n);
      },
    });
  }

  jobEnded(job: Job, outcome: RunOutcome, ended: Job): void {
    const seconds =
      ended.startedAt !== null && ended.endedAt !== null ? (ended.endedAt - ended.startedAt) / 1000 : 0;
    this.jobDuration.observe({ operation: job.operation, state: outcome.state }, seconds);
    this.bytes.inc({ operation: job.operation, kind: 'scanned' }, ended.bytesScanned);
    this.bytes.inc({ operation: job.operation, kind: 'new' }, ended.bytesNew);
    this.bytes.inc({ operation: job.operation, kind: 'stored' }, ended.bytesStored);
    // A prune's freed bytes live in its result (stored JSON): counted only when well formed.
    const gc = ended.result.gc;
    if (job.operation === 'prune' && typeof gc === 'object' && gc !== null && 'bytesFreed' in gc) {
      const freed = gc.bytesFreed;
      if (typeof freed === 'number' && freed > 0 && ended.result.dryRun !== true)
        this.bytes.inc({ operation: 'prune', kind: 'freed' }, freed);
    }
  }
}
