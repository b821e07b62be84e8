/** Protected items with Backup now; a refusal shows its article inline with the blocking job. */
import { useState } from 'preact/hooks';
import { ApiError, get, post } from '../api';
import { relative } from '../format';
import { useEvery, useLiveJob, useLoad } from '../live';
import { useCan } from '../me';
import type { Item, Job, Policy } from '../types';
import { ErrorView, JobProgress, Loading, PageTitle, Refusal, StateBadge, Time } from '../ui';

/** Backup now for one item, with an optional read-rate limit, and what came of it. */
export function BackupNow({
  item,
  withOptions = false,
  onStarted,
}: {
  item: { id: string; name: string; vaultId: string };
  withOptions?: boolean;
  onStarted?: (j: Job) => void;
}) {
  const canOperate = useCan('operator');
  const [started, setStarted] = useState<Job | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const [limit, setLimit] = useState('');
  if (!canOperate) return null;
  const trigger = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    setStarted(null);
    try {
      const mib = Number(limit);
      const body =
        limit && mib > 0 ? { limitReadBytesPerSec: Math.max(1024, Math.round(mib * 1024 * 1024)) } : {};
      const job = await post('/api/v1/items/{item}/backups', { path: { item: item.id }, body });
      setStarted(job);
      onStarted?.(job);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const refusal =
    error instanceof ApiError && error.problem?.code === 'UserErrorBackupOperationInProgress'
      ? error.problem
      : null;
  return (
    <div class="backup-now">
      <form class="inline-form" onSubmit={trigger} aria-label={`Back up ${item.name}`}>
        {withOptions && (
          <label>
            Read limit (MiB/s, optional)
            <input
              type="number"
              min="0.001"
              step="any"
              inputMode="decimal"
              name="limit"
              value={limit}
              onInput={(e) => setLimit(e.currentTarget.value)}
            />
          </label>
        )}
        <button type="submit" class="primary" disabled={busy} aria-label={`Backup now: ${item.name}`}>
          Backup now
        </button>
      </form>
      {started && <Started job={started} />}
      {refusal ? <Refusal problem={refusal} itemVaultId={item.vaultId} /> : <ErrorView error={error} />}
    </div>
  );
}

function Started({ job }: { job: Job }) {
  const live = useLiveJob(job);
  return (
    <p class="notice" role="status">
      Backup started: <a href={`/jobs/${live.id}`}>job {live.id}</a> <StateBadge state={live.state} />{' '}
      <JobProgress job={live} label={`progress of the backup of ${live.item?.name ?? ''}`} />
    </p>
  );
}

function protection(i: Item, active: Job | undefined): string {
  if (active) return 'backing up';
  if (!i.lastPoint) return 'not yet protected';
  if (i.lastJob && ['failed', 'cancelled', 'skipped'].includes(i.lastJob.state))
    return 'protected, last run failed';
  return 'protected';
}

export function ItemsPage() {
  const data = useLoad(async (signal) => {
    const [items, active, policies] = await Promise.all([
      get('/api/v1/items', { signal }),
      get('/api/v1/jobs', {
        query: { state: 'queued,in_progress,cancelling', operation: 'backup', limit: 500 },
        signal,
      }),
      get('/api/v1/policies', { signal }),
    ]);
    return { items, active: active.jobs, policies };
  }, 'items');
  useEvery(5000, data.reload);
  const d = data.data;
  const activeByItem = new Map((d?.active ?? []).map((j) => [j.item?.id ?? '', j]));
  const policyName = new Map((d?.policies ?? []).map((p: Policy) => [p.id, p.name]));
  return (
    <>
      <PageTitle title="Items">Protected items</PageTitle>
      <ErrorView error={data.error} />
      {!d ? (
        <Loading what="items" />
      ) : d.items.length === 0 ? (
        <p class="muted">
          No protected items yet: <code>coffer item add NAME --vault VAULT --path DIR</code>.
        </p>
      ) : (
        <ul class="item-list">
          {d.items.map((i) => {
            const active = activeByItem.get(i.id);
            return (
              <li key={i.id} class="card item-card" data-item={i.name}>
                <div class="item-head">
                  <h2>
                    <a href={`/items/${i.id}`}>{i.name}</a>
                  </h2>
                  <span class={`protection p-${protection(i, active).replace(/[ ,]+/g, '-')}`}>
                    {protection(i, active)}
                  </span>
                </div>
                <dl class="facts compact">
                  <dt>Vault</dt>
                  <dd>{i.vaultName ?? i.vaultId}</dd>
                  <dt>Policy</dt>
                  <dd>{i.policyId ? (policyName.get(i.policyId) ?? i.policyId) : 'none (on demand only)'}</dd>
                  <dt>Last job</dt>
                  <dd>
                    {i.lastJob ? (
                      <>
                        <a href={`/jobs/${i.lastJob.id}`}>
                          <StateBadge state={i.lastJob.state} />
                        </a>{' '}
                        {i.lastJob.endedAt ? relative(i.lastJob.endedAt) : ''}
                      </>
                    ) : (
                      'never'
                    )}
                  </dd>
                  <dt>Last recovery point</dt>
                  <dd>
                    <Time iso={i.lastPoint?.snapshotTime} />
                  </dd>
                </dl>
                {active && <ActiveRow job={active} />}
                <BackupNow item={i} onStarted={data.reload} />
              </li>
            );
          })}
        </ul>
      )}
    </>
  );
}

function ActiveRow({ job }: { job: Job }) {
  const live = useLiveJob(job);
  return (
    <p>
      <a href={`/jobs/${live.id}`}>Job {live.id}</a> <StateBadge state={live.state} />{' '}
      <JobProgress job={live} />
    </p>
  );
}
