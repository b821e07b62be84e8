/**
 * The dashboard's shell: who is signed in (whoami, or a token form when the server has tokens),
 * the navigation, and the client routes that src/http/routes/web.ts answers with index.html.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, session } from './api';
import { MeContext } from './me';
import { HelpPage } from './pages/help';
import { JobPage } from './pages/job';
import { JobsPage } from './pages/jobs';
import { InsightsPage } from './pages/insights';
import { ItemPage } from './pages/item';
import { ItemsPage } from './pages/items';
import { OverviewPage } from './pages/overview';
import { PoliciesPage } from './pages/policies';
import { interceptLinks, match, useLocation, type Location } from './router';
import type { Whoami } from './types';
import { ErrorView, PageTitle } from './ui';
import './styles.css';

type Auth =
  { kind: 'loading' } | { kind: 'signed-in'; me: Whoami } | { kind: 'signed-out'; error: Error | null };

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/jobs', 'Backup jobs'],
  ['/items', 'Items'],
  ['/policies', 'Policies'],
  ['/insights', 'Insights'],
];

function Page({ loc }: { loc: Location }) {
  let m: Record<string, string> | null;
  if (match('/', loc.path)) return <OverviewPage />;
  if (match('/jobs', loc.path)) return <JobsPage query={loc.query} />;
  if ((m = match('/jobs/:id', loc.path))) return <JobPage key={m.id} id={m.id!} />;
  if (match('/items', loc.path)) return <ItemsPage />;
  if ((m = match('/items/:item', loc.path))) return <ItemPage key={m.item} item={m.item!} />;
  if (match('/policies', loc.path)) return <PoliciesPage />;
  if (match('/insights', loc.path)) return <InsightsPage />;
  if ((m = match('/help/:page', loc.path))) return <HelpPage key={m.page} page={m.page!} />;
  return (
    <>
      <PageTitle title="Not found">Not found</PageTitle>
      <p>
        There is no page at <code>{loc.path}</code>. <a href="/">Back to the overview</a>.
      </p>
    </>
  );
}

function SignIn({ error, onToken }: { error: Error | null; onToken: (t: string) => void }) {
  const [token, setToken] = useState('');
  return (
    <main id="main" class="sign-in">
      <form
        class="panel"
        onSubmit={(e) => {
          e.preventDefault();
          onToken(token.trim());
        }}
        aria-labelledby="sign-in-h"
      >
        <PageTitle title="Sign in">
          <span id="sign-in-h">Sign in to coffer</span>
        </PageTitle>
        <p>
          This server requires an API token. An admin creates one with{' '}
          <code>coffer token create --role operator --name NAME</code>. The token stays in this browser tab
          only.
        </p>
        <label>
          API token
          <input
            type="password"
            name="token"
            autoComplete="off"
            required
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        <div class="form-actions">
          <button type="submit" class="primary">
            Sign in
          </button>
        </div>
        <ErrorView error={error} />
      </form>
    </main>
  );
}

function App() {
  const loc = useLocation();
  const [auth, setAuth] = useState<Auth>({ kind: 'loading' });
  const check = async () => {
    try {
      setAuth({ kind: 'signed-in', me: await get('/api/v1/whoami') });
    } catch (e) {
      // A 401 has already signed out through onUnauthenticated.
      if (!(e instanceof ApiError && e.status === 401)) setAuth({ kind: 'signed-out', error: e as Error });
    }
  };
  useEffect(() => {
    // Any 401 (no token yet, a wrong one, or one revoked meanwhile) shows the sign-in form; the
    // refusal is shown only when a token was tried.
    session.onUnauthenticated = (error) => {
      const tried = session.token() !== null;
      session.setToken(null);
      setAuth({ kind: 'signed-out', error: tried ? error : null });
    };
    void check();
  }, []);

  // The docs pages need no API, so they open even in a tab that has not signed in (a token
  // lives in one tab's sessionStorage, and article links open a new tab).
  const help = auth.kind !== 'signed-in' ? match('/help/:page', loc.path) : null;
  if (help)
    return (
      <main id="main">
        <HelpPage page={help.page!} />
      </main>
    );
  if (auth.kind === 'loading') return <p class="muted">Loading…</p>;
  if (auth.kind === 'signed-out')
    return (
      <SignIn
        error={auth.error}
        onToken={(t) => {
          session.setToken(t);
          void check();
        }}
      />
    );
  const me = auth.me;
  const section = loc.path === '/' ? '/' : `/${loc.path.split('/')[1]}`;
  return (
    <MeContext.Provider value={me}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a href="/" class="brand" aria-label="coffer overview">
          coffer
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([path, label]) => (
              <li key={path}>
                <a href={path} aria-current={section === path ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            {me.name} <span class="badge role">{me.role}</span>
          </span>
          {me.tokensRequired && (
            <button
              type="button"
              class="link"
              onClick={() => {
                session.setToken(null);
                setAuth({ kind: 'signed-out', error: null });
              }}
            >
              Sign out
            </button>
          )}
        </div>
      </header>
      <main id="main">
        <Page loc={loc} />
      </main>
      <footer class="muted">
        <a href="/docs" data-external>
          API docs
        </a>{' '}
        · <a href="/help/best-practices.md">Best practices</a>
      </footer>
    </MeContext.Provider>
  );
}

const root = document.getElementById('app')!;
interceptLinks(root);
render(<App />, root);
