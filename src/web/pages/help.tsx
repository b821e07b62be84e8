/** The docs pages the self-help articles link to, rendered in the dashboard. */
import { useEffect } from 'preact/hooks';
import { useLoad } from '../live';
import { renderMarkdown } from '../markdown';
import { ErrorView, Loading, PageTitle } from '../ui';

async function loadPage(page: string, signal: AbortSignal): Promise<string> {
  // The same URL answers index.html to a browser's navigation and the markdown to this fetch.
  const res = await fetch(`/help/${encodeURIComponent(page)}`, {
    headers: { accept: 'text/markdown' },
    signal,
  });
  if (!res.ok)
    throw new Error(
      res.status === 404 ? `There is no help page ${page}.` : `GET /help/${page}: ${res.status}`,
    );
  return res.text();
}

export function HelpPage({ page }: { page: string }) {
  const doc = useLoad((signal) => loadPage(page, signal), page);
  const text = doc.data ?? '';
  const title = /^#\s+(.*)$/m.exec(text)?.[1] ?? page;
  useEffect(() => {
    // The anchor's section exists only once the page has rendered.
    const id = decodeURIComponent(window.location.hash.slice(1));
    if (doc.data && id) document.getElementById(id)?.scrollIntoView();
  }, [doc.data]);
  return (
    <article class="help">
      <PageTitle title={title}>{title}</PageTitle>
      <ErrorView error={doc.error} />
      {doc.data === null && !doc.error && <Loading what={page} />}
      {doc.data !== null && renderMarkdown(text.replace(/^#\s+.*\n/, ''))}
    </article>
  );
}
