/** Policies: schedule, retention, overlap; create, edit and pause (admin). */
import { useState } from 'preact/hooks';
import { get, patch, post } from '../api';
import { bytes, relative } from '../format';
import { useLoad } from '../live';
import { useCan } from '../me';
import type { Policy, PolicyCreate } from '../types';
import { ErrorView, Loading, PageTitle, Time } from '../ui';

/** The retention rules in the order people read them (as in `coffer policy create --keep-*`). */
const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type Overlap = NonNullable<PolicyCreate['overlap']>;
const OVERLAP: [Overlap, string][] = [
  ['skip', 'skip: record the due run as skipped'],
  ['queue-one', 'queue-one: one run waits for the active one'],
  ['cancel-running', 'cancel-running: cancel the active scheduled run'],
];

export function PoliciesPage() {
  const list = useLoad((signal) => get('/api/v1/policies', { signal }), 'policies');
  const isAdmin = useCan('admin');
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const togglePause = async (p: Policy) => {
    setError(null);
    try {
      await patch('/api/v1/policies/{policy}', { path: { policy: p.id }, body: { paused: !p.paused } });
      list.reload();
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <>
      <PageTitle title="Policies">Policies</PageTitle>
      <ErrorView error={list.error ?? error} />
      {!list.data ? (
        <Loading what="policies" />
      ) : (
        <div class="table-wrap">
          <table>
            <caption>Schedules, retention and what happens when a run is due while one is active</caption>
            <thead>
              <tr>
                <th scope="col">Policy</th>
                <th scope="col">Schedule</th>
                <th scope="col">Retention</th>
                <th scope="col">On overlap</th>
                <th scope="col">Read limit</th>
                <th scope="col">Items</th>
                <th scope="col">Next run</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.length === 0 && (
                <tr>
                  <td colSpan={8} class="muted">
                    No policies yet.
                  </td>
                </tr>
              )}
              {list.data.map((p) => (
                <tr key={p.id} data-policy={p.name}>
                  <td>
                    <strong>{p.name}</strong>
                    {p.paused && <span class="badge state-skipped">paused</span>}
                  </td>
                  <td>
                    <code>{p.schedule}</code> {p.timezone}
                    {p.jitterSeconds > 0 && ` ±${p.jitterSeconds} s`}
                  </td>
                  <td>{retentionSummary(p.retention)}</td>
                  <td>{p.overlap}</td>
                  <td>{p.limitReadBytesPerSec ? `${bytes(p.limitReadBytesPerSec)}/s` : '–'}</td>
                  <td>{p.items ?? '–'}</td>
                  <td>
                    {p.nextRun ? <span title={p.nextRun}>{relative(p.nextRun)}</span> : <Time iso={null} />}
                  </td>
                  <td>
                    {isAdmin && (
                      <div class="actions">
                        <button
                          type="button"
                          aria-expanded={editing === p.id}
                          aria-label={`Edit policy ${p.name}`}
                          onClick={() => setEditing(editing === p.id ? null : p.id)}
                        >
                          Edit
                        </button>
                        <button
                          type="button"
                          aria-label={`${p.paused ? 'Resume' : 'Pause'} policy ${p.name}`}
                          onClick={() => togglePause(p)}
                        >
                          {p.paused ? 'Resume' : 'Pause'}
                        </button>
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {isAdmin && editing && list.data && (
        <PolicyForm
          key={editing}
          policy={list.data.find((p) => p.id === editing) ?? null}
          onDone={() => {
            setEditing(null);
            list.reload();
          }}
        />
      )}
      {isAdmin && !editing && <PolicyForm key="new" policy={null} onDone={list.reload} />}
    </>
  );
}

function retentionSummary(r: Record<string, number>): string {
  const parts = RULES.filter((k) => (r[k] ?? 0) > 0).map((k) => `${k} ${r[k]}`);
  return parts.length ? parts.join(', ') : 'keep all';
}

/** Create (policy = null) or edit a policy; only changed fields are sent on edit. */
function PolicyForm({ policy, onDone }: { policy: Policy | null; onDone: () => void }) {
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const text = (k: string) => String(f.get(k) ?? '').trim();
    const int = (k: string) => (text(k) === '' ? undefined : Number(text(k)));
    const retention: Record<string, number> = {};
    for (const r of RULES) {
      const v = int(`keep-${r}`);
      if (v !== undefined) retention[r] = v;
    }
    const limit = text('limit');
    const settings = {
      schedule: text('schedule'),
      timezone: text('timezone') || undefined,
      jitterSeconds: int('jitter'),
      retention,
      overlap: OVERLAP.find(([v]) => v === text('overlap'))?.[0],
      catchUpSeconds: int('catchup'),
      limitReadBytesPerSec: limit ? Math.max(1024, Math.round(Number(limit) * 1024 * 1024)) : null,
    };
    setError(null);
    try {
      if (policy) {
        await patch('/api/v1/policies/{policy}', { path: { policy: policy.id }, body: settings });
        setSaved(`Saved ${policy.name}.`);
      } else {
        const body: PolicyCreate = { name: text('name'), ...settings };
        const created = await post('/api/v1/policies', { body });
        setSaved(`Created ${created.name}.`);
        form.reset();
      }
      onDone();
    } catch (err) {
      setError(err as Error);
    }
  };
  const id = policy ? `edit-${policy.id}` : 'new-policy';
  return (
    <form class="panel policy-form" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>{policy ? `Edit policy ${policy.name}` : 'New policy'}</h2>
      <div class="grid">
        {!policy && (
          <label>
            Name
            <input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}" autoComplete="off" />
          </label>
        )}
        <label>
          Schedule (cron)
          <input name="schedule" required defaultValue={policy?.schedule ?? '0 2 * * *'} autoComplete="off" />
        </label>
        <label>
          Time zone
          <input
            name="timezone"
            defaultValue={policy?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone}
            autoComplete="off"
          />
        </label>
        <label>
          Jitter (seconds)
          <input
            name="jitter"
            type="number"
            min="0"
            max="86400"
            defaultValue={String(policy?.jitterSeconds ?? 0)}
          />
        </label>
        <label>
          On overlap
          <select name="overlap" defaultValue={policy?.overlap ?? 'skip'}>
            {OVERLAP.map(([v, l]) => (
              <option key={v} value={v}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          Catch-up window (seconds)
          <input
            name="catchup"
            type="number"
            min="0"
            max="2592000"
            defaultValue={policy ? String(policy.catchUpSeconds) : ''}
            placeholder="server default"
          />
        </label>
        <label>
          Read limit (MiB/s)
          <input
            name="limit"
            type="number"
            min="0.001"
            step="any"
            defaultValue={
              policy?.limitReadBytesPerSec ? String(policy.limitReadBytesPerSec / 1024 / 1024) : ''
            }
            placeholder="unlimited"
          />
        </label>
      </div>
      <fieldset>
        <legend>Retention: keep the newest point of each of the last N …</legend>
        <div class="grid retention">
          {RULES.map((r) => (
            <label key={r}>
              {r === 'last' ? 'last N points' : r}
              <input
                name={`keep-${r}`}
                type="number"
                min="0"
                max="100000"
                defaultValue={policy?.retention[r] !== undefined ? String(policy.retention[r]) : ''}
              />
            </label>
          ))}
        </div>
      </fieldset>
      <div class="form-actions">
        <button type="submit" class="primary">
          {policy ? 'Save changes' : 'Create policy'}
        </button>
        {policy && (
          <button type="button" onClick={onDone}>
            Close
          </button>
        )}
      </div>
      {saved && (
        <p class="notice" role="status">
          {saved}
        </p>
      )}
      <ErrorView error={error} />
    </form>
  );
}
