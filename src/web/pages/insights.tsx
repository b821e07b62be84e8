/** Insights: warnings from the job history, each with the items it names and the recommended change. */
import { Fragment } from 'preact';
import { get } from '../api';
import { useLoad } from '../live';
import { DocLinks, ErrorView, Loading, PageTitle } from '../ui';

function evidenceText(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

export function InsightsPage() {
  const list = useLoad((signal) => get('/api/v1/insights', { signal }), 'insights');
  return (
    <>
      <PageTitle title="Insights">Insights</PageTitle>
      <p class="muted">coffer reads its own job history and warns before backups collide or keep failing.</p>
      <ErrorView error={list.error} />
      {!list.data ? (
        <Loading what="insights" />
      ) : list.data.length === 0 ? (
        <p class="notice">No warnings: schedules leave room for their backups and nothing is stuck.</p>
      ) : (
        <ul class="insights">
          {list.data.map((i, n) => (
            <li key={n} class={`card insight severity-${i.severity}`}>
              <h2>
                <span class="badge">{i.severity}</span> {i.title}
              </h2>
              <p>
                Items:{' '}
                {i.items.map((it, k) => (
                  <span key={it.id}>
                    {k > 0 && ', '}
                    <a href={`/items/${it.id}`}>{it.name}</a>
                  </span>
                ))}
              </p>
              <p class="recommendation">
                <strong>Recommendation:</strong> {i.recommendation}
              </p>
              {Object.keys(i.evidence).length > 0 && (
                <details>
                  <summary>Evidence</summary>
                  <dl class="facts compact">
                    {Object.entries(i.evidence).map(([k, v]) => (
                      <Fragment key={k}>
                        <dt>{k}</dt>
                        <dd>{evidenceText(v)}</dd>
                      </Fragment>
                    ))}
                  </dl>
                </details>
              )}
              <DocLinks docs={i.docs} />
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
