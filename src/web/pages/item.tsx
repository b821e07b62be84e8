/**
 * One item: Backup now (with a read limit), its active job, recovery points with the rule that
 * keeps each and a restore to a target path, its policy and vault, and its recent jobs.
 */
import { useState } from 'preact/hooks';
import { get, post, put } from '../api';
import { bytes, shortId } from '../format';
import { useEvery, useLiveJob, useLoad } from '../live';
import { useCan } from '../me';
import { href } from '../router';
import type { ItemDetail, Job, Point, Policy, Vault } from '../types';
import { ErrorView, JobProgress, JobTable, Loading, PageTitle, StateBadge, Time } from '../ui';
import { BackupNow } from './items';

interface ItemData {
  item: ItemDetail;
  points: Point[];
  policies: Policy[];
  vaults: Vault[];
  jobs: Job[];
}

export function ItemPage({ item: ref }: { item: string }) {
  const data = useLoad<ItemData>(async (signal) => {
    const [item, points, policies, vaults, jobs] = await Promise.all([
      get('/api/v1/items/{item}', { path: { item: ref }, signal }),
      get('/api/v1/items/{item}/points', { path: { item: ref }, signal }),
      get('/api/v1/policies', { signal }),
      get('/api/v1/vaults', { signal }),
      get('/api/v1/jobs', { query: { item: ref, limit: 10 }, signal }),
    ]);
    return { item, points, policies, vaults, jobs: jobs.jobs };
  }, ref);
  useEvery(5000, data.reload);
  const d = data.data;
  return (
    <>
      <PageTitle title={d ? d.item.name : 'Item'}>{d ? `Item ${d.item.name}` : 'Item'}</PageTitle>
      <ErrorView error={data.error} />
      {!d ? !data.error && <Loading what="the item" /> : <ItemView d={d} reload={data.reload} />}
    </>
  );
}

function ItemView({ d, reload }: { d: ItemData; reload: () => void }) {
  const { item } = d;
  const policy = d.policies.find((p) => p.id === item.policyId) ?? null;
  const previous = item.previousVaultId ? d.vaults.find((v) => v.id === item.previousVaultId) : undefined;
  const [restoreOf, setRestoreOf] = useState<Point | null>(null);
  return (
    <>
      <dl class="facts">
        <dt>Item id</dt>
        <dd>
          <code>{item.id}</code>
        </dd>
        <dt>Source</dt>
        <dd>
          <code>{item.sourcePath}</code>
        </dd>
        <dt>Vault</dt>
        <dd>
          <a href={href('/jobs', { vault: item.vaultName ?? item.vaultId })}>
            {item.vaultName ?? item.vaultId}
          </a>
        </dd>
        {previous && (
          <>
            <dt>Moved from</dt>
            <dd>
              <a href={href('/jobs', { vault: previous.name, item: item.name })}>{previous.name}</a>{' '}
              <span class="muted">(its jobs there still count for this item)</span>
            </dd>
          </>
        )}
        <dt>Policy</dt>
        <dd>
          {policy
            ? `${policy.name} (${policy.schedule}, ${policy.timezone})`
            : 'none: backups on demand only'}
        </dd>
      </dl>

      <section aria-labelledby="backup-h">
        <h2 id="backup-h">Back up</h2>
        {item.activeJob && <ActiveJob job={item.activeJob} />}
        <BackupNow item={item} withOptions onStarted={reload} />
      </section>

      <section aria-labelledby="points-h">
        <h2 id="points-h">Recovery points</h2>
        <div class="table-wrap">
          <table class="points">
            <caption>{d.points.length} recovery points, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Point</th>
                <th scope="col">Time</th>
                <th scope="col">Vault</th>
                <th scope="col">Files</th>
                <th scope="col">Scanned / new / stored</th>
                <th scope="col">Kept by</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {d.points.length === 0 && (
                <tr>
                  <td colSpan={7} class="muted">
                    No recovery points yet.
                  </td>
                </tr>
              )}
              {d.points.map((p) => (
                <tr key={p.id} data-point={p.id}>
                  <td>
                    <a href={`/jobs/${p.jobId}`} title="the backup job that made it">
                      <code>{shortId(p.id)}</code>
                    </a>
                  </td>
                  <td>
                    <Time iso={p.snapshotTime} />
                  </td>
                  <td>{p.vaultName ?? p.vaultId}</td>
                  <td>{p.files}</td>
                  <td>
                    {bytes(p.bytesScanned)} / {bytes(p.bytesNew)} / {bytes(p.bytesStored)}
                  </td>
                  <td class={p.retention.keep ? '' : 'warn-text'}>{p.retention.summary}</td>
                  <td>
                    <RestoreButton point={p} onOpen={() => setRestoreOf(p)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {restoreOf && <RestoreForm item={item} point={restoreOf} onClose={() => setRestoreOf(null)} />}
      </section>

      <Settings d={d} reload={reload} />

      <section aria-labelledby="jobs-h">
        <h2 id="jobs-h">Recent jobs</h2>
        <JobTable
          jobs={d.jobs}
          caption={`The last ${d.jobs.length} jobs of ${item.name}, in any vault`}
          onChanged={reload}
        />
        <p>
          <a href={href('/jobs', { item: item.name })}>All jobs of {item.name}</a>
        </p>
      </section>
    </>
  );
}

function ActiveJob({ job }: { job: Job }) {
  const live = useLiveJob(job);
  return (
    <p class="notice">
      Running now: <a href={`/jobs/${live.id}`}>job {live.id}</a> in vault {live.vault.name}{' '}
      <StateBadge state={live.state} /> <JobProgress job={live} label="progress of the running backup" />
    </p>
  );
}

function RestoreButton({ point, onOpen }: { point: Point; onOpen: () => void }) {
  if (!useCan('operator')) return null;
  return (
    <button type="button" onClick={onOpen} aria-label={`Restore point ${shortId(point.id)}`}>
      Restore…
    </button>
  );
}

function RestoreForm({ item, point, onClose }: { item: ItemDetail; point: Point; onClose: () => void }) {
  const [target, setTarget] = useState('');
  const [subpath, setSubpath] = useState('');
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setJob(
        await post('/api/v1/items/{item}/restores', {
          path: { item: item.id },
          body: { target, point: point.id, ...(subpath ? { path: subpath } : {}) },
        }),
      );
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="restore-h">
      <h3 id="restore-h">
        Restore point <code>{shortId(point.id)}</code> of {item.name}
      </h3>
      <p class="muted">
        Files are written on the worker's host into the target directory and never outside it. Restoring does
        not wait for backups: it reads only committed points.
      </p>
      <label>
        Target directory (absolute path on the worker host)
        <input
          type="text"
          name="target"
          required
          pattern="/.*"
          placeholder="/srv/restore/photos"
          value={target}
          onInput={(e) => setTarget(e.currentTarget.value)}
        />
      </label>
      <label>
        Only this path inside the point (optional)
        <input type="text" name="path" value={subpath} onInput={(e) => setSubpath(e.currentTarget.value)} />
      </label>
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy}>
          Start restore
        </button>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
      <ErrorView error={error} />
      {job && <RestoreStatus job={job} />}
    </form>
  );
}

function RestoreStatus({ job }: { job: Job }) {
  const live = useLiveJob(job);
  return (
    <p class="notice" role="status">
      Restore <a href={`/jobs/${live.id}`}>job {live.id}</a> <StateBadge state={live.state} />{' '}
      <JobProgress job={live} label="restore progress" />
    </p>
  );
}

/** Assigning a policy and moving to another vault are admin actions. */
function Settings({ d, reload }: { d: ItemData; reload: () => void }) {
  const isAdmin = useCan('admin');
  const [error, setError] = useState<Error | null>(null);
  const [moved, setMoved] = useState<string | null>(null);
  if (!isAdmin) return null;
  const { item } = d;
  const run = async (fn: () => Promise<void>) => {
    setError(null);
    try {
      await fn();
      reload();
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <section aria-labelledby="settings-h">
      <h2 id="settings-h">Settings</h2>
      <div class="inline-form">
        <label>
          Policy
          <select
            value={item.policyId ?? ''}
            onChange={(e) => {
              const policy = e.currentTarget.value || null;
              void run(async () => {
                await put('/api/v1/items/{item}/policy', { path: { item: item.id }, body: { policy } });
              });
            }}
          >
            <option value="">none (on demand only)</option>
            {d.policies.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            const vault = new FormData(e.currentTarget).get('vault');
            if (typeof vault !== 'string' || !vault) return;
            void run(async () => {
              await post('/api/v1/items/{item}/move', { path: { item: item.id }, body: { vault } });
              setMoved(vault);
            });
          }}
        >
          <label>
            Move to vault
            <select name="vault">
              {d.vaults
                .filter((v) => v.id !== item.vaultId)
                .map((v) => (
                  <option key={v.id} value={v.name}>
                    {v.name}
                  </option>
                ))}
            </select>
          </label>
          <button type="submit" disabled={d.vaults.length < 2}>
            Move
          </button>
        </form>
      </div>
      {moved && (
        <p class="notice" role="status">
          From now on {item.name} is backed up into {moved}. A job still running in the old vault keeps
          blocking it until it ends.
        </p>
      )}
      <ErrorView error={error} />
    </section>
  );
}
