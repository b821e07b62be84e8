/** Overview: vaults, each item's last backup, active jobs, failures of the last 24 h, insights. */
import { get } from '../api';
import { relative } from '../format';
import { useEvery, useLoad } from '../live';
import { href } from '../router';
import type { Insight, Item, Job, Vault } from '../types';
import { ErrorView, JobTable, Loading, PageTitle, StateBadge, Time } from '../ui';

interface OverviewData {
  vaults: Vault[];
  items: Item[];
  active: Job[];
  failed: Job[];
  insights: Insight[];
}

async function loadOverview(signal: AbortSignal): Promise<OverviewData> {
  const [vaults, items, active, failed, insights] = await Promise.all([
    get('/api/v1/vaults', { signal }),
    get('/api/v1/items', { signal }),
    get('/api/v1/jobs', { query: { state: 'queued,in_progress,cancelling', limit: 100 }, signal }),
    get('/api/v1/jobs', { query: { state: 'failed', since: '24h', limit: 100 }, signal }),
    get('/api/v1/insights', { signal }),
  ]);
  return { vaults, items, active: active.jobs, failed: failed.jobs, insights };
}

export function OverviewPage() {
  const data = useLoad(loadOverview, 'overview');
  // Counts and the item table move without a stream; a cheap refresh keeps them current.
  useEvery(5000, data.reload);
  const d = data.data;
  return (
    <>
      <PageTitle title="Overview">Overview</PageTitle>
      <ErrorView error={data.error} />
      {!d ? (
        <Loading what="the overview" />
      ) : (
        <>
          <ul class="stats" aria-label="Summary">
            <li>
              <a href={href('/jobs', { state: 'queued,in_progress,cancelling' })}>
                <strong>{d.active.length}</strong> active jobs
              </a>
            </li>
            <li class={d.failed.length ? 'bad' : ''}>
              <a href={href('/jobs', { state: 'failed', since: '24h' })}>
                <strong>{d.failed.length}</strong> failures in 24 h
              </a>
            </li>
            <li class={d.insights.length ? 'warn' : ''}>
              <a href="/insights">
                <strong>{d.insights.length}</strong> insights
              </a>
            </li>
            <li>
              <a href="/items">
                <strong>{d.items.length}</strong> protected items
              </a>
            </li>
          </ul>

          <section aria-labelledby="vaults-h">
            <h2 id="vaults-h">Vaults</h2>
            {d.vaults.length === 0 ? (
              <p class="muted">
                No vaults yet: <code>coffer vault create NAME --path DIR</code>.
              </p>
            ) : (
              <ul class="cards">
                {d.vaults.map((v) => (
                  <li key={v.id} class="card">
                    <h3>{v.name}</h3>
                    <p class="muted location">{v.location}</p>
                    <p>
                      {v.items ?? 0} items · {v.activeJobs ?? 0} active jobs
                    </p>
                    <a href={href('/jobs', { vault: v.name })}>Backup jobs of {v.name}</a>
                  </li>
                ))}
              </ul>
            )}
          </section>

          <section aria-labelledby="active-h">
            <h2 id="active-h">Active jobs</h2>
            <JobTable
              jobs={d.active}
              caption="Jobs queued, in progress or cancelling"
              onChanged={data.reload}
              empty="Nothing is running."
            />
          </section>

          <section aria-labelledby="items-h">
            <h2 id="items-h">Last backup per item</h2>
            <div class="table-wrap">
              <table>
                <caption>Each protected item's most recent job and recovery point</caption>
                <thead>
                  <tr>
                    <th scope="col">Item</th>
                    <th scope="col">Vault</th>
                    <th scope="col">Last job</th>
                    <th scope="col">Ended</th>
                    <th scope="col">Last recovery point</th>
                  </tr>
                </thead>
                <tbody>
                  {d.items.map((i) => (
                    <tr key={i.id}>
                      <td>
                        <a href={`/items/${i.id}`}>{i.name}</a>
                      </td>
                      <td>{i.vaultName ?? i.vaultId}</td>
                      <td>
                        {i.lastJob ? (
                          <a href={`/jobs/${i.lastJob.id}`}>
                            <StateBadge state={i.lastJob.state} />
                          </a>
                        ) : (
                          <span class="muted">never backed up</span>
                        )}
                      </td>
                      <td>{i.lastJob?.endedAt ? relative(i.lastJob.endedAt) : '–'}</td>
                      <td>
                        <Time iso={i.lastPoint?.snapshotTime} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>

          {d.failed.length > 0 && (
            <section aria-labelledby="failed-h">
              <h2 id="failed-h">Failures in the last 24 hours</h2>
              <JobTable jobs={d.failed} caption="Failed jobs since yesterday" onChanged={data.reload} />
            </section>
          )}
        </>
      )}
    </>
  );
}
