/**
 * Catalog notices over PostgreSQL LISTEN/NOTIFY. The store publishes `queued` after it commits a
 * job that became queued and `cancel:<job id>` after it commits a cancel request (or a forced
 * release). One dedicated connection per process listens, opened on the first subscription (so
 * short CLI commands never open it), and reconnects with backoff when it drops. Notices are a
 * latency optimisation only: every subscriber still polls, more slowly while the listener is
 * connected, so a lost notice costs one poll interval and never correctness.
 *
 * Why the store publishes after commit rather than a trigger notifying inside the transaction:
 * PostgreSQL serialises the commits of every transaction that issued NOTIFY (a cluster-wide
 * lock held through the commit's WAL flush). Notifying inside each admission cut the catalog's
 * admission rate by about a third (bench/catalog-admission.ts --pg, 32 in flight). Published
 * separately and coalesced (`queued` at most every 25 ms per process), the notices cost
 * admissions little, and admissions never wait for them.
 */
import type pg from 'pg';

export const NOTIFY_CHANNEL = 'coffer_jobs';
/** Least time between two `queued` notices from one process. */
export const QUEUED_NOTICE_GAP_MS = 25;

/** A notice as subscribers see it. `reconnected`: notices may have been missed; look now. */
export type CatalogNotice = { kind: 'queued' } | { kind: 'cancel'; jobId: string } | { kind: 'reconnected' };

/** What the store publishes. */
export type PublishedNotice = { kind: 'queued' } | { kind: 'cancel'; jobId: string };

export interface CatalogNotices {
  /**
   * Sends a notice to every listening process; call after the change committed. Never throws
   * and never waits: a notice that cannot be sent is left to the subscribers' polling.
   */
  publish(notice: PublishedNotice): void;
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

/** `driver` is the pg module connect.ts loaded (pg is loaded only when PostgreSQL is used). */
export function postgresNotices(
  url: string,
  driver: typeof pg,
  send: (payload: string) => Promise<void>,
): CatalogNotices {
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
    const c = new driver.Client({ connectionString: url, connectionTimeoutMillis: 10_000, keepAlive: true });
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

  // `queued` carries nothing but "look now", so notices published while one is being sent, or
  // within QUEUED_NOTICE_GAP_MS of the last, collapse into one more send: under a burst of
  // admissions a process sends at most about 40 a second, and a wake-up waits at most the gap.
  let queuedBusy = false;
  let queuedAgain = false;
  const sendQueued = () => {
    queuedBusy = true;
    const started = Date.now();
    void send('queued')
      .catch(() => undefined)
      .finally(() => {
        const wait = Math.max(0, QUEUED_NOTICE_GAP_MS - (Date.now() - started));
        setTimeout(() => {
          queuedBusy = false;
          if (queuedAgain && !closed) {
            queuedAgain = false;
            sendQueued();
          }
        }, wait).unref();
      });
  };

  return {
    publish(n) {
      if (closed) return;
      if (n.kind === 'cancel') {
        void send(`cancel:${n.jobId}`).catch(() => undefined);
      } else if (queuedBusy) {
        queuedAgain = true;
      } else {
        sendQueued();
      }
    },
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
