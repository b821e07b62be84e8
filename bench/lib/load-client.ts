/**
 * A load-generating client process for the HTTP benchmarks, started with fork() so the parent
 * can release every client at the same instant over IPC. It opens its keep-alive connections
 * first (not timed), reports `ready`, waits for `go`, then sends its requests:
 *  - spread: POST a backup for each of `paths`, `concurrency` requests in flight;
 *  - storm: `count` POSTs at one item, all at once on one connection each, or with `concurrency`
 *    in flight when given (a sustained stream of repeat triggers rather than one burst).
 * and replies with the statuses, per-request latencies and what the 202s and 409s named.
 */
import { Agent, request } from 'node:http';

export type LoadTask =
  | { mode: 'spread'; url: string; paths: string[]; concurrency: number; body: string }
  | { mode: 'storm'; url: string; path: string; count: number; body: string; concurrency?: number };

export interface LoadResult {
  statuses: Record<string, number>;
  latencies: number[];
  startedAt: number;
  endedAt: number;
  /** Job ids returned with 202 (storm only). */
  accepted: string[];
  /** Distinct blockingJob ids named by the 409s, and the error codes they carried (storm only). */
  blockers: string[];
  codes: string[];
  /** Transport errors and the first unexpected bodies. */
  errors: string[];
}

export type ToClient = { type: 'task'; task: LoadTask } | { type: 'go' };
export type FromClient = { type: 'ready' } | { type: 'result'; result: LoadResult };

const nowMs = (): number => performance.timeOrigin + performance.now();

function send(
  agent: Agent,
  url: URL,
  method: string,
  path: string,
  body: string | null,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers:
          body === null
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** Opens `n` keep-alive connections by holding `n` requests in flight at once. */
async function openConnections(agent: Agent, url: URL, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, () => send(agent, url, 'GET', '/healthz', null)));
}

async function run(task: LoadTask, go: Promise<void>): Promise<LoadResult> {
  const url = new URL(task.url);
  const sockets = task.concurrency ?? (task.mode === 'storm' ? task.count : 1);
  const agent = new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
  await openConnections(agent, url, sockets);
  process.send!({ type: 'ready' } satisfies FromClient);
  await go;
  const result: LoadResult = {
    statuses: {},
    latencies: [],
    startedAt: nowMs(),
    endedAt: 0,
    accepted: [],
    blockers: [],
    codes: [],
    errors: [],
  };
  const texts: { status: number; text: string }[] = [];
  const one = async (path: string, keepText: boolean) => {
    const t0 = performance.now();
    try {
      const res = await send(agent, url, 'POST', path, task.body);
      result.latencies.push(performance.now() - t0);
      result.statuses[res.status] = (result.statuses[res.status] ?? 0) + 1;
      if (keepText || (res.status !== 202 && result.errors.length < 5)) texts.push(res);
    } catch (err) {
      result.errors.push((err as Error).message);
    }
  };
  const paths = task.mode === 'spread' ? task.paths : Array.from({ length: task.count }, () => task.path);
  let next = 0;
  await Promise.all(
    Array.from({ length: sockets }, async () => {
      while (next < paths.length) await one(paths[next++]!, task.mode === 'storm');
    }),
  );
  result.endedAt = nowMs();
  agent.destroy();
  // Read the bodies only now, outside the timed part.
  const blockers = new Set<string>();
  const codes = new Set<string>();
  for (const r of texts) {
    let body: { id?: unknown; code?: unknown; blockingJob?: { id?: unknown } } = {};
    try {
      body = JSON.parse(r.text) as typeof body;
    } catch {
      // not JSON: reported below
    }
    if (r.status === 202 && typeof body.id === 'string') result.accepted.push(body.id);
    else if (r.status === 409) {
      if (typeof body.code === 'string') codes.add(body.code);
      if (typeof body.blockingJob?.id === 'string') blockers.add(body.blockingJob.id);
    } else if (result.errors.length < 5) result.errors.push(`${r.status} ${r.text.slice(0, 300)}`);
  }
  result.blockers = [...blockers];
  result.codes = [...codes];
  return result;
}

let release: () => void = () => undefined;
const go = new Promise<void>((resolve) => (release = resolve));
process.on('message', (m: ToClient) => {
  if (m.type === 'go') release();
  else
    void run(m.task, go).then(
      (result) => process.send!({ type: 'result', result } satisfies FromClient, () => process.exit(0)),
      (err: unknown) => {
        process.stderr.write(`load client failed: ${(err as Error).stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
});
