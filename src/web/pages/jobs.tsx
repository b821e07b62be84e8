/**
 * Backup Jobs, per vault or across vaults: the filters live in the URL (so a filtered view can
 * be bookmarked and the back button works), pages follow the API's cursor, and sorting orders
 * the rows of the page on screen.
 */
import { useState } from 'preact/hooks';
import { get } from '../api';
import { stateLabel } from '../format';
import { useEvery, useLoad } from '../live';
import { href, navigate } from '../router';
import { JOB_STATES, OPERATIONS, type Job } from '../types';
import { ErrorView, JobTable, Loading, PageTitle, sortJobs, type Sort, type SortKey } from '../ui';

const PAGE_SIZE = 25;
const FILTERS = ['vault', 'item', 'state', 'operation', 'since', 'until'] as const;
const RANGES: [string, string][] = [
  ['', 'Any time'],
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
];
const SORT_KEYS: SortKey[] = ['start', 'duration', 'state', 'item', 'vault', 'operation'];

/** datetime-local inputs speak local wall time; the API takes ISO instants. */
const toIso = (local: string): string => (local ? new Date(local).toISOString() : '');
function toLocal(iso: string | null): string {
  if (!iso || !/^\d{4}-/.test(iso)) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function JobsPage({ query }: { query: URLSearchParams }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, query.get(f) ?? ''])) as Record<
    (typeof FILTERS)[number],
    string
  >;
  const cursor = query.get('cursor');
  // ?limit= picks the page size (the API allows up to 500); it rides along in every link.
  const limitParam = query.get('limit');
  const pageSize = Math.min(500, Math.max(1, Math.floor(Number(limitParam)) || PAGE_SIZE));
  const sortKey = query.get('sort') as SortKey | null;
  const sort: Sort | null =
    sortKey && SORT_KEYS.includes(sortKey)
      ? { key: sortKey, dir: query.get('dir') === 'asc' ? 'asc' : 'desc' }
      : null;
  const [retried, setRetried] = useState<Job | null>(null);

  const refs = useLoad(async (signal) => {
    const [vaults, items] = await Promise.all([
      get('/api/v1/vaults', { signal }),
      get('/api/v1/items', { signal }),
    ]);
    return { vaults, items };
  }, 'refs');
  const key = FILTERS.map((f) => filters[f]).join('|') + `|${cursor ?? ''}|${pageSize}`;
  const list = useLoad(
    (signal) =>
      get('/api/v1/jobs', {
        query: {
          vault: filters.vault || undefined,
          item: filters.item || undefined,
          state: filters.state || undefined,
          operation: filters.operation || undefined,
          since: filters.since || undefined,
          until: filters.until || undefined,
          cursor: cursor ?? undefined,
          limit: pageSize,
        },
        signal,
      }),
    key,
  );
  // New jobs appear on the first page without a reload; older pages are history and stay put.
  useEvery(5000, list.reload, !cursor);

  const go = (changes: Record<string, string | null>) => {
    const next: Record<string, string | null> = {
      ...filters,
      cursor,
      limit: limitParam,
      sort: sort?.key ?? null,
      dir: sort?.dir ?? null,
    };
    Object.assign(next, changes);
    navigate(href('/jobs', next), { replace: 'sort' in changes });
  };
  const setFilter = (name: string, value: string) => go({ [name]: value, cursor: null });
  const range = RANGES.some(([v]) => v === filters.since) ? filters.since : 'custom';
  const [custom, setCustom] = useState(range === 'custom');
  const vaultName = filters.vault;

  return (
    <>
      <PageTitle title={vaultName ? `Backup jobs · ${vaultName}` : 'Backup jobs'}>
        Backup jobs{vaultName ? ` in vault ${vaultName}` : ' across vaults'}
      </PageTitle>
      <form class="filters" aria-label="Filter jobs" onSubmit={(e) => e.preventDefault()}>
        <label>
          Vault
          <select value={filters.vault} onChange={(e) => setFilter('vault', e.currentTarget.value)}>
            <option value="">All vaults</option>
            {refs.data?.vaults.map((v) => (
              <option key={v.id} value={v.name}>
                {v.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Item
          <select value={filters.item} onChange={(e) => setFilter('item', e.currentTarget.value)}>
            <option value="">All items</option>
            {refs.data?.items.map((i) => (
              <option key={i.id} value={i.name}>
                {i.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          State
          <select value={filters.state} onChange={(e) => setFilter('state', e.currentTarget.value)}>
            <option value="">Any state</option>
            <option value="queued,in_progress,cancelling">active</option>
            <option value="failed,cancelled,skipped">needs attention</option>
            {JOB_STATES.map((s) => (
              <option key={s} value={s}>
                {stateLabel(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Operation
          <select value={filters.operation} onChange={(e) => setFilter('operation', e.currentTarget.value)}>
            <option value="">Any operation</option>
            {OPERATIONS.map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </label>
        <label>
          Time range
          <select
            value={custom ? 'custom' : range}
            onChange={(e) => {
              const v = e.currentTarget.value;
              setCustom(v === 'custom');
              if (v !== 'custom') go({ since: v, until: null, cursor: null });
            }}
          >
            {RANGES.map(([v, l]) => (
              <option key={v} value={v}>
                {l}
              </option>
            ))}
            <option value="custom">Between…</option>
          </select>
        </label>
        {custom && (
          <>
            <label>
              From
              <input
                type="datetime-local"
                value={toLocal(filters.since)}
                onChange={(e) => setFilter('since', toIso(e.currentTarget.value))}
              />
            </label>
            <label>
              To
              <input
                type="datetime-local"
                value={toLocal(filters.until)}
                onChange={(e) => setFilter('until', toIso(e.currentTarget.value))}
              />
            </label>
          </>
        )}
        {FILTERS.some((f) => filters[f]) && (
          <button type="button" class="link" onClick={() => navigate('/jobs')}>
            Clear filters
          </button>
        )}
      </form>

      {retried && (
        <p class="notice" role="status">
          Retry started: <a href={`/jobs/${retried.id}`}>job {retried.id}</a> ({retried.item?.name}).
        </p>
      )}
      <ErrorView error={list.error} />
      {!list.data ? (
        <Loading what="jobs" />
      ) : (
        <>
          <JobTable
            jobs={sortJobs(list.data.jobs, sort)}
            caption={`${list.data.jobs.length} jobs${cursor ? ' (older page)' : ', newest first'}${sort ? '; sorted on this page' : ''}`}
            sort={sort}
            onSort={(s) => go({ sort: s.key, dir: s.dir })}
            onChanged={list.reload}
            onRetried={setRetried}
            empty="No jobs match these filters."
          />
          <nav class="pager" aria-label="Pages">
            {cursor && (
              <a
                href={href('/jobs', { ...filters, limit: limitParam, sort: sort?.key, dir: sort?.dir })}
                rel="first"
              >
                ← Newest
              </a>
            )}
            {list.data.nextCursor && (
              <a
                href={href('/jobs', {
                  ...filters,
                  cursor: list.data.nextCursor,
                  limit: limitParam,
                  sort: sort?.key,
                  dir: sort?.dir,
                })}
                rel="next"
              >
                Older →
              </a>
            )}
          </nav>
        </>
      )}
    </>
  );
}
