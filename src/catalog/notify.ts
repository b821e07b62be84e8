/**
 * Catalog notices over PostgreSQL LISTEN/NOTIFY. The `jobs_notify` trigger (migration
 * 005_workers) sends `queued` when a job becomes queued and `cancel:<job id>` when a cancel is
 * requested; notices are delivered on commit only. One dedicated connection per process
 * listens, opened on the first subscription (so short CLI commands never open it), and
 * reconnects with backoff when it drops. Notices are a latency optimisation only: every
 * subscriber still polls, more slowly while the listener is connected, so a lost notice costs
 * one poll interval and never correctness.
 */
import pg from 'pg';

export const NOTIFY_CHANNEL = 'coffer_jobs';

/** A notice as subscribers see it. `reconnected`: notices may have been missed; look now. */
export type CatalogNotice = { kind: 'queued' } | { kind: 'cancel'; jobId: string } | { kind: 'reconnected' };

export interface CatalogNotices {
  /** Starts listening (once per process) and calls `fn` for every notice; returns unsubscribe. */
  subscribe(fn: (notice: CatalogNotice) => void): () => void;
  /** True while the listening connection is up: subscribers may then poll less often. */
  readonly connected: boolean;
  close(): Promise<void>;
}

export function parseNotice(payload: string | undefined): CatalogNotice | null {
  if (payload === 'queued') return { kind: 'queued' };
  if (payload?.startsWith('cancel:')) return { kind: 'cancel', jobId: payload.slice('cancel:'.length) };
  return null;
}

export function postgresNotices(url: string): CatalogNotices {
  const subscribers = new Set<(n: CatalogNotice) => void>();
  let client: pg.Client | null = null;
  let connected = false;
  let started = false;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let attempt = 0;

  const emit = (n: CatalogNotice) => {
    for (const fn of subscribers) {
      try {
        fn(n);
      } catch {
        // A subscriber's failure must not stop the others from hearing the notice.
      }
    }
  };

  const scheduleReconnect = () => {
    if (closed || retryTimer) return;
    const delay = Math.min(5000, 250 * 2 ** Math.min(attempt, 5)) + Math.random() * 250;
    attempt++;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void connect();
    }, delay);
    retryTimer.unref();
  };

  const dropped = (c: pg.Client) => {
    if (client !== c) return;
    client = null;
    connected = false;
    c.removeAllListeners('notification');
    void c.end().catch(() => undefined);
    scheduleReconnect();
  };

  const connect = async (): Promise<void> => {
    if (closed) return;
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, keepAlive: true });
    client = c;
    c.on('error', () => dropped(c));
    c.on('end', () => dropped(c));
    c.on('notification', (msg) => {
      if (msg.channel !== NOTIFY_CHANNEL) return;
      const n = parseNotice(msg.payload);
      if (n) emit(n);
    });
    try {
      await c.connect();
      await c.query(`listen ${NOTIFY_CHANNEL}`);
    } catch {
      dropped(c);
      return;
    }
    if (closed || client !== c) {
      await c.end().catch(() => undefined);
      return;
    }
    const wasReconnect = attempt > 0;
    attempt = 0;
    connected = true;
    // Anything queued or cancelled while we were not listening was not heard: look now.
    if (wasReconnect) emit({ kind: 'reconnected' });
  };

  return {
    subscribe(fn) {
      subscribers.add(fn);
      if (!started) {
        started = true;
        void connect();
      }
      return () => subscribers.delete(fn);
    },
    get connected() {
      return connected;
    },
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      const c = client;
      client = null;
      connected = false;
      subscribers.clear();
      if (c) {
        c.removeAllListeners();
        c.on('error', () => undefined);
        await c.end().catch(() => undefined);
      }
    },
  };
}
