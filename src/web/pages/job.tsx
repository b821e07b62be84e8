/** One job: live state and counters, the worker and lease, the timeline, and the error's article. */
import { get } from '../api';
import { bytes, duration, stateLabel } from '../format';
import { useLiveJob, useLoad } from '../live';
import { href, navigate } from '../router';
import { isActive, type JobDetail } from '../types';
import {
  ArticleView,
  ErrorView,
  JobActions,
  JobDuration,
  JobProgress,
  Loading,
  PageTitle,
  StateBadge,
  Time,
  Trigger,
} from '../ui';

export function JobPage({ id }: { id: string }) {
  const detail = useLoad<JobDetail>((signal) => get('/api/v1/jobs/{id}', { path: { id }, signal }), id);
  return (
    <>
      <PageTitle title={`Job ${id}`}>
        Job <code>{id}</code>
      </PageTitle>
      <ErrorView error={detail.error} />
      {detail.data ? (
        <JobView job={detail.data} reload={detail.reload} />
      ) : (
        !detail.error && <Loading what="the job" />
      )}
    </>
  );
}

function JobView({ job, reload }: { job: JobDetail; reload: () => void }) {
  // Every state change adds a timeline entry: reload the detail when the stream reports one.
  const live = useLiveJob(job, reload);
  const p = live.progress;
  return (
    <>
      <div class="job-head">
        <StateBadge state={live.state} />
        <span>
          {live.operation} of{' '}
          {live.item ? <a href={`/items/${live.item.id}`}>{live.item.name ?? live.item.id}</a> : 'the vault'}{' '}
          in vault{' '}
          <a href={href('/jobs', { vault: live.vault.name ?? live.vault.id })}>
            {live.vault.name ?? live.vault.id}
          </a>
        </span>
        <JobActions job={live} onChanged={reload} onRetried={(j) => navigate(`/jobs/${j.id}`)} />
      </div>
      {(isActive(live.state) || p.bytesDone > 0) && (
        <div class="big-progress">
          <JobProgress job={live} label="job progress" />
        </div>
      )}
      <dl class="facts">
        <dt>Trigger</dt>
        <dd>
          <Trigger job={live} />
          {live.scheduledFor && (
            <>
              {' '}
              (due <Time iso={live.scheduledFor} />)
            </>
          )}
        </dd>
        <dt>Requested by</dt>
        <dd>{live.requestedBy ?? '–'}</dd>
        <dt>Created</dt>
        <dd>
          <Time iso={live.createdAt} />
        </dd>
        <dt>Started</dt>
        <dd>
          <Time iso={live.startedAt} />
        </dd>
        <dt>Ended</dt>
        <dd>
          <Time iso={live.endedAt} />
        </dd>
        <dt>Duration</dt>
        <dd>
          <JobDuration job={live} />
        </dd>
        <dt>Files</dt>
        <dd>
          {p.filesDone}
          {p.filesTotal !== null ? ` of ${p.filesTotal}` : ''}
        </dd>
        <dt>Read</dt>
        <dd>
          {bytes(p.bytesDone)}
          {p.bytesTotal !== null ? ` of ${bytes(p.bytesTotal)}` : ''}
          {isActive(live.state) && p.bytesPerSecond ? ` at ${bytes(p.bytesPerSecond)}/s` : ''}
        </dd>
        <dt>Scanned / new / stored</dt>
        <dd>
          {bytes(live.bytesScanned)} / {bytes(live.bytesNew)} / {bytes(live.bytesStored)}
        </dd>
        <dt>Worker</dt>
        <dd>{live.worker ?? '–'}</dd>
        {live.lease && (
          <>
            <dt>Lease</dt>
            <dd>
              held by {live.lease.owner}, fencing token {live.lease.fencingToken}, expires{' '}
              <Time iso={live.lease.expiresAt} />
            </dd>
          </>
        )}
        {live.cancelRequestedAt && (
          <>
            <dt>Cancel requested</dt>
            <dd>
              <Time iso={live.cancelRequestedAt} />
            </dd>
          </>
        )}
        {live.recoveryPointId && (
          <>
            <dt>Recovery point</dt>
            <dd>
              <a href={live.item ? `/items/${live.item.id}` : '#'}>
                <code>{live.recoveryPointId.slice(0, 12)}</code>
              </a>
            </dd>
          </>
        )}
        {p.etaSeconds !== null && isActive(live.state) && (
          <>
            <dt>Time left</dt>
            <dd>about {duration(p.etaSeconds * 1000)}</dd>
          </>
        )}
      </dl>
      {live.warnings.length > 0 && (
        <section aria-labelledby="warnings-h">
          <h2 id="warnings-h">Warnings</h2>
          <ul>
            {live.warnings.map((w, i) => (
              <li key={i}>{w}</li>
            ))}
          </ul>
        </section>
      )}
      {live.error && (
        <section aria-labelledby="error-h" class="problem">
          <h2 id="error-h">Why it ended</h2>
          <ArticleView
            code={live.error.code}
            message={live.error.message}
            context={{ jobId: live.id, item: live.item?.name, vault: live.vault.name }}
          />
        </section>
      )}
      <section aria-labelledby="timeline-h">
        <h2 id="timeline-h">Timeline</h2>
        <ol class="timeline">
          {job.events.map((e, i) => (
            <li key={i} data-state={e.state}>
              <Time iso={e.at} /> <StateBadge state={e.state} />
              {e.message && <span class="event-message"> {e.message}</span>}
            </li>
          ))}
          {live.state !== job.state && (
            <li data-state={live.state}>
              now <StateBadge state={live.state} /> <span class="muted">({stateLabel(live.state)})</span>
            </li>
          )}
        </ol>
      </section>
    </>
  );
}
