/** Building blocks shared by the pages: job state and progress, actions, problems and articles. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, post, type Problem } from './api';
import { bytes, duration, stateLabel, time } from './format';
import { useLiveJob, useLoad } from './live';
import { useCan } from './me';
import { href } from './router';
import { isActive, isRetryable, type Article, type Job } from './types';

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span>–</span>;
  return <time dateTime={iso}>{time(iso)}</time>;
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`}>{stateLabel(state)}</span>;
}

/** Re-renders every second while `enabled`, for clocks that tick (a running job's duration). */
export function useNow(enabled: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!enabled) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [enabled]);
  return now;
}

export function JobDuration({ job }: { job: Job }) {
  const running = isActive(job.state) && job.startedAt !== null;
  const now = useNow(running);
  if (running) return <span>{duration(now - new Date(job.startedAt!).getTime())}</span>;
  return <span>{duration(job.durationMs)}</span>;
}

/** A native <progress> (accessible by default, and styled without inline styles for the CSP). */
export function JobProgress({ job, label }: { job: Job; label?: string }) {
  const p = job.progress;
  const active = isActive(job.state);
  if (!active && job.state !== 'completed' && job.state !== 'completed_with_warnings' && !p.bytesDone)
    return <span class="muted">–</span>;
  const done = job.state === 'completed' || job.state === 'completed_with_warnings';
  const percent = done ? 100 : p.percent;
  const text =
    percent === null
      ? `${bytes(p.bytesDone)} read`
      : `${Math.floor(percent)} %${active && p.bytesPerSecond ? ` · ${bytes(p.bytesPerSecond)}/s` : ''}${
          active && p.etaSeconds !== null ? ` · ${duration(p.etaSeconds * 1000)} left` : ''
        }`;
  return (
    <span class="progress">
      <progress
        max={100}
        value={percent ?? undefined}
        aria-label={label ?? `progress of ${job.operation} ${job.item?.name ?? job.vault.name ?? ''}`}
        aria-valuetext={text}
        data-job={job.id}
      />
      <span class="progress-text">{text}</span>
    </span>
  );
}

/** "retry of j_…" links to the job it retries. */
export function Trigger({ job }: { job: Job }) {
  if (job.retryOf)
    return (
      <span>
        retry of <a href={`/jobs/${job.retryOf}`}>{job.retryOf}</a>
      </span>
    );
  return <span>{job.trigger}</span>;
}

/** Modal confirmation on a native <dialog>: focus is trapped and Escape closes it. */
export function ConfirmButton(props: {
  label: string;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  keepLabel: string;
  onConfirm: () => void;
  className?: string;
  disabled?: boolean;
  ariaLabel?: string;
}) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <>
      <button
        type="button"
        class={props.className}
        disabled={props.disabled}
        aria-label={props.ariaLabel}
        onClick={() => setOpen(true)}
      >
        {props.label}
      </button>
      {open && (
        <dialog ref={ref} onClose={() => setOpen(false)} aria-labelledby="confirm-title">
          <h2 id="confirm-title">{props.title}</h2>
          <div>{props.children}</div>
          <div class="dialog-actions">
            <button type="button" autofocus onClick={() => setOpen(false)}>
              {props.keepLabel}
            </button>
            <button
              type="button"
              class="danger"
              onClick={() => {
                setOpen(false);
                props.onConfirm();
              }}
            >
              {props.confirmLabel}
            </button>
          </div>
        </dialog>
      )}
    </>
  );
}

/** Maps the catalog's `docs/page.md#anchor` links to the server's /help pages. */
export function docHref(h: string): string {
  const m = /^docs\/([a-z0-9-]+\.md)(#.*)?$/.exec(h);
  return m ? `/help/${m[1]}${m[2] ?? ''}` : h;
}

export function DocLinks({ docs }: { docs: { title: string; href: string }[] }) {
  if (docs.length === 0) return null;
  return (
    <div class="docs">
      <h4>Read more</h4>
      <ul>
        {docs.map((d) => (
          <li key={d.href}>
            <a href={docHref(d.href)} target="_blank" rel="noopener">
              {d.title}
            </a>
          </li>
        ))}
      </ul>
    </div>
  );
}

// The catalog's placeholder syntax (src/errors/render.ts): {path[,path…][|fallback]}.
const PLACEHOLDER = /\{([A-Za-z_]\w*(?:\.\w+)*(?:,[A-Za-z_]\w*(?:\.\w+)*)*)(?:\|([^{}]*))?\}/g;

/** Fills an article step's placeholders from what the page knows (a job's id, item, vault). */
export function fillStep(step: string, context: Record<string, string | null | undefined>): string {
  return step.replace(PLACEHOLDER, (_m, paths: string, fallback: string | undefined) => {
    for (const path of paths.split(',')) {
      const v = context[path];
      if (v) return v;
    }
    return fallback ?? paths.toUpperCase();
  });
}

/** Step text with `backticked` commands shown as code. */
export function StepText({ text }: { text: string }) {
  const parts = text.split(/`([^`]+)`/);
  return <>{parts.map((p, i) => (i % 2 === 1 ? <code key={i}>{p}</code> : p))}</>;
}

/** The full self-help article for an error code: description, numbered steps, documents. */
export function ArticleView({
  code,
  message,
  context = {},
}: {
  code: string;
  message?: string | null;
  context?: Record<string, string | null | undefined>;
}) {
  const article = useLoad<Article>(
    (signal) => get('/api/v1/errors/{code}', { path: { code }, signal }),
    code,
  );
  const a = article.data;
  return (
    <section class="article" aria-labelledby={`article-${code}`}>
      <h3 id={`article-${code}`}>
        <code>{code}</code>
        {a ? ` — ${a.title}` : ''}
      </h3>
      {message && <p class="detail">{message}</p>}
      {a && (
        <>
          <p>
            <StepText text={a.description} />
          </p>
          <h4>What to do</h4>
          <ol>
            {a.recommendedSteps.map((s, i) => (
              <li key={i}>
                <StepText text={fillStep(s, context)} />
              </li>
            ))}
          </ol>
          <DocLinks docs={a.docs} />
        </>
      )}
      {article.error && <p class="muted">The article could not be loaded: {article.error.message}</p>}
    </section>
  );
}

/** Any failed request: the problem's title, detail and recommended steps. */
export function ErrorView({ error }: { error: Error | null }) {
  if (!error) return null;
  const p = error instanceof ApiError ? error.problem : null;
  if (!p)
    return (
      <div class="problem" role="alert">
        <p>{error.message}</p>
      </div>
    );
  return (
    <div class="problem" role="alert">
      <h3>
        {p.title} <code>{p.code}</code>
      </h3>
      <p>{p.detail}</p>
      {p.recommendedSteps.length > 0 && (
        <ol>
          {p.recommendedSteps.map((s, i) => (
            <li key={i}>
              <StepText text={s} />
            </li>
          ))}
        </ol>
      )}
      <DocLinks docs={p.docs} />
    </div>
  );
}

/**
 * The UserErrorBackupOperationInProgress refusal, inline: the blocking job with a link (in
 * whichever vault it runs), its live progress, a one-click cancel for operators, the steps.
 */
export function Refusal({
  problem,
  itemVaultId,
  onFreed,
}: {
  problem: Problem;
  itemVaultId?: string;
  onFreed?: () => void;
}) {
  const b = problem.blockingJob;
  const blocking = useLoad<Job | null>(
    (signal) => (b ? get('/api/v1/jobs/{id}', { path: { id: b.id }, signal }) : Promise.resolve(null)),
    b?.id ?? '',
  );
  const otherVault = b && itemVaultId !== undefined && b.vaultId !== itemVaultId;
  return (
    <div class="problem refusal" role="alert" data-code={problem.code}>
      <h3>
        {problem.title} <code>{problem.code}</code>
      </h3>
      <p>{problem.detail}</p>
      {b && (
        <div class="blocking">
          <p>
            Blocked by{' '}
            <a href={`/jobs/${b.id}`} class="blocking-link">
              {b.operation} job {b.id}
            </a>{' '}
            in vault{' '}
            <a href={href('/jobs', { vault: b.vaultName })}>
              <strong>{b.vaultName}</strong>
            </a>
            {otherVault && (
              <strong class="warn-text"> — the item's previous vault: it was moved while this job ran</strong>
            )}
            .
          </p>
          {blocking.data ? (
            <BlockingJob job={blocking.data} onFreed={onFreed} />
          ) : (
            <p>
              <StateBadge state={b.state} /> since <Time iso={b.startedAt ?? b.createdAt} />, triggered{' '}
              {b.trigger}
            </p>
          )}
        </div>
      )}
      <h4>What to do</h4>
      <ol>
        {problem.recommendedSteps.map((s, i) => (
          <li key={i}>
            <StepText text={s} />
          </li>
        ))}
      </ol>
      <DocLinks docs={problem.docs} />
    </div>
  );
}

function BlockingJob({ job, onFreed }: { job: Job; onFreed?: () => void }) {
  const live = useLiveJob(job, (j) => {
    if (!isActive(j.state)) onFreed?.();
  });
  const canOperate = useCan('operator');
  const [error, setError] = useState<Error | null>(null);
  return (
    <div class="blocking-job">
      <p>
        <StateBadge state={live.state} /> started <Time iso={live.startedAt ?? live.createdAt} />, trigger{' '}
        <Trigger job={live} />
        {live.requestedBy ? `, requested by ${live.requestedBy}` : ''}
      </p>
      <JobProgress job={live} label="progress of the blocking job" />
      {canOperate && isActive(live.state) && live.state !== 'cancelling' && (
        <p>
          <button
            type="button"
            class="danger"
            onClick={async () => {
              setError(null);
              try {
                await post('/api/v1/jobs/{id}/cancel', { path: { id: live.id } });
              } catch (e) {
                setError(e as Error);
              }
            }}
          >
            Cancel blocking job
          </button>
        </p>
      )}
      {!isActive(live.state) && <p class="ok-text">The item is free again: you can back it up now.</p>}
      <ErrorView error={error} />
    </div>
  );
}

/** Cancel (confirmed) and Retry for one job, shown only to roles that may use them. */
export function JobActions({
  job,
  onRetried,
  onChanged,
}: {
  job: Job;
  onRetried?: (j: Job) => void;
  onChanged?: () => void;
}) {
  const canOperate = useCan('operator');
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  if (!canOperate) return null;
  const what = `${job.operation} of ${job.item?.name ?? job.vault.name ?? job.id}`;
  const act = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="actions">
      {isActive(job.state) && job.state !== 'cancelling' && (
        <ConfirmButton
          label="Cancel"
          ariaLabel={`Cancel ${what}`}
          className="danger"
          disabled={busy}
          title={`Cancel ${what}?`}
          keepLabel="Keep running"
          confirmLabel="Cancel job"
          onConfirm={() =>
            act(async () => {
              await post('/api/v1/jobs/{id}/cancel', { path: { id: job.id } });
              onChanged?.();
            })
          }
        >
          <p>
            Job <code>{job.id}</code> stops within about a second and commits nothing; no recovery point is
            made. You can retry it afterwards.
          </p>
        </ConfirmButton>
      )}
      {isRetryable(job.state) && (
        <button
          type="button"
          disabled={busy}
          aria-label={`Retry ${what}`}
          onClick={() =>
            act(async () => {
              const j = await post('/api/v1/jobs/{id}/retry', { path: { id: job.id } });
              onRetried?.(j);
              onChanged?.();
            })
          }
        >
          Retry
        </button>
      )}
      {error instanceof ApiError && error.problem?.code === 'UserErrorBackupOperationInProgress' ? (
        <Refusal problem={error.problem} />
      ) : (
        <ErrorView error={error} />
      )}
    </div>
  );
}

export type Column = 'id' | 'operation' | 'item' | 'vault' | 'state' | 'start' | 'duration' | 'progress';
export type SortKey = 'start' | 'duration' | 'state' | 'item' | 'vault' | 'operation';

export interface Sort {
  key: SortKey;
  dir: 'asc' | 'desc';
}

const SORTABLE: Record<SortKey, string> = {
  operation: 'Operation',
  item: 'Item',
  vault: 'Vault',
  state: 'State',
  start: 'Started',
  duration: 'Duration',
};

function sortValue(j: Job, key: SortKey): string | number {
  switch (key) {
    case 'start':
      return new Date(j.startedAt ?? j.createdAt).getTime();
    case 'duration':
      return j.durationMs ?? (j.startedAt ? Date.now() - new Date(j.startedAt).getTime() : -1);
    case 'state':
      return j.state;
    case 'item':
      return j.item?.name ?? '';
    case 'vault':
      return j.vault.name ?? '';
    case 'operation':
      return j.operation;
  }
}

export function sortJobs(jobs: Job[], sort: Sort | null): Job[] {
  if (!sort) return jobs;
  const sign = sort.dir === 'asc' ? 1 : -1;
  return [...jobs].sort((a, b) => {
    const x = sortValue(a, sort.key);
    const y = sortValue(b, sort.key);
    return (x < y ? -1 : x > y ? 1 : 0) * sign;
  });
}

/** The jobs table; each active row follows its job live. */
export function JobTable({
  jobs,
  caption,
  sort,
  onSort,
  onChanged,
  onRetried,
  empty = 'No jobs.',
}: {
  jobs: Job[];
  caption: string;
  sort?: Sort | null;
  onSort?: (s: Sort) => void;
  onChanged?: () => void;
  onRetried?: (j: Job) => void;
  empty?: string;
}) {
  const th = (key: SortKey) => {
    const label = SORTABLE[key];
    if (!onSort) return <th scope="col">{label}</th>;
    const current = sort?.key === key ? sort.dir : null;
    return (
      <th
        scope="col"
        aria-sort={current === 'asc' ? 'ascending' : current === 'desc' ? 'descending' : 'none'}
      >
        <button
          type="button"
          class="sort"
          onClick={() => onSort({ key, dir: current === 'desc' ? 'asc' : 'desc' })}
        >
          {label}
          <span aria-hidden="true">{current === 'asc' ? ' ▲' : current === 'desc' ? ' ▼' : ''}</span>
        </button>
      </th>
    );
  };
  return (
    <div class="table-wrap">
      <table class="jobs">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Job</th>
            {th('operation')}
            {th('item')}
            {th('vault')}
            {th('state')}
            {th('start')}
            {th('duration')}
            <th scope="col">Progress</th>
            <th scope="col">Trigger</th>
            <th scope="col">Requested by</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {jobs.length === 0 && (
            <tr>
              <td colSpan={11} class="muted">
                {empty}
              </td>
            </tr>
          )}
          {jobs.map((j) => (
            <JobRow key={j.id} job={j} onChanged={onChanged} onRetried={onRetried} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function JobRow({
  job,
  onChanged,
  onRetried,
}: {
  job: Job;
  onChanged?: () => void;
  onRetried?: (j: Job) => void;
}) {
  const live = useLiveJob(job);
  return (
    <tr data-job={live.id} data-state={live.state}>
      <td>
        <a href={`/jobs/${live.id}`} aria-label={`job ${live.id}`}>
          <code>{live.id}</code>
        </a>
      </td>
      <td>{live.operation}</td>
      <td>{live.item ? <a href={`/items/${live.item.id}`}>{live.item.name ?? live.item.id}</a> : '–'}</td>
      <td>
        <a href={href('/jobs', { vault: live.vault.name ?? live.vault.id })}>
          {live.vault.name ?? live.vault.id}
        </a>
      </td>
      <td>
        <StateBadge state={live.state} />
        {live.error && <code class="error-code">{live.error.code}</code>}
      </td>
      <td>
        <Time iso={live.startedAt ?? live.createdAt} />
      </td>
      <td>
        <JobDuration job={live} />
      </td>
      <td>
        <JobProgress job={live} />
      </td>
      <td class="wrap">
        <Trigger job={live} />
      </td>
      <td class="wrap">{live.requestedBy ?? '–'}</td>
      <td>
        <JobActions job={live} onChanged={onChanged} onRetried={onRetried} />
      </td>
    </tr>
  );
}

/** The page's <h1>; focused after client navigation so screen readers announce the new page. */
export function PageTitle({ children, title }: { children: ComponentChildren; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · coffer`;
    ref.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" aria-live="polite">
      Loading {what}…
    </p>
  );
}
