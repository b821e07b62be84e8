/**
 * `coffer serve` and `coffer worker` as real processes sharing one catalog: jobs triggered over
 * HTTP run on either process, cancel and retry reach them across processes, events stream live,
 * and SIGTERM shuts down gracefully without leaving a job in progress.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dialects } from '../support/catalogs.js';
import { REPO_ROOT, collect, startCoffer, waitFor } from '../support/cli.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';

interface JobBody {
  id: string;
  state: string;
  worker: string | null;
  trigger: string;
  error: { code: string } | null;
}

/** Starts `coffer serve` on a free port and returns its base URL once it listens. */
async function serve(
  w: World,
  args: string[] = [],
): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = startCoffer(['serve', '--port', '0', ...args], w.env);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await waitFor(
    'coffer serve to listen',
    async () => /listening on (http:\/\/\S+)/.exec(out)?.[1],
    20_000,
    50,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${err}`);
  });
  return { child, url, stderr: () => err };
}

async function call<T = JobBody>(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

const SLOW = { limitReadBytesPerSec: 2 * 1024 * 1024 };
const HTTP_STORM = join(REPO_ROOT, 'dist', 'test', 'system', 'fixtures', 'http-storm.js');

interface StormResult {
  accepted: string[];
  blockers: string[];
  other: string[];
  latencies: number[];
}

/** CLIENTS processes fire TOTAL triggers at one item at the same instant. */
async function httpStorm(url: string, item: string, clients: number, total: number): Promise<StormResult[]> {
  const children = Array.from({ length: clients }, () =>
    spawn(process.execPath, [HTTP_STORM, url, item, String(total / clients)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const outputs = children.map(
    (c) =>
      new Promise<string>((resolve) => {
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.on('close', () => resolve(out));
      }),
  );
  await waitFor(
    'storm clients ready',
    async () => (await Promise.all(children.map(async (c) => c.stdout.readableLength >= 0))).every(Boolean),
    5000,
  );
  await new Promise((r) => setTimeout(r, 500));
  for (const c of children) c.stdin.end('go\n');
  return (await Promise.all(outputs)).map((o) => JSON.parse(o.trim().split('\n').pop()!) as StormResult);
}

for (const dialect of await dialects()) {
  describe(`coffer serve with a second worker process (${dialect})`, () => {
    let w: World;
    let api: Awaited<ReturnType<typeof serve>>;
    let worker: ChildProcess;
    let workerExit: ReturnType<typeof collect>;

    before(async () => {
      w = await createWorld(dialect, { COFFER_LOG_LEVEL: 'warn' });
      await w.ok(['vault', 'create', 'main', '--path', join(w.root, 'vault')]);
      for (let i = 0; i < 4; i++) {
        await makeRandomTree(join(w.root, `data-${i}`), 12, 1024 * 1024);
        await w.ok(['item', 'add', `data-${i}`, '--vault', 'main', '--path', join(w.root, `data-${i}`)]);
      }
      api = await serve(w, ['--workers', '1']);
      worker = startCoffer(['worker', '--concurrency', '1'], w.env);
      workerExit = collect(worker);
    });
    after(async () => {
      api.child.kill('SIGTERM');
      worker.kill('SIGTERM');
      await Promise.all([
        collect(api.child, 30_000).catch(() => undefined),
        workerExit.catch(() => undefined),
      ]);
      await w.close();
    });

    test('jobs triggered over HTTP run on both processes; cancel and retry reach them across processes', async () => {
      const triggered: JobBody[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await call(api.url, 'POST', `/api/v1/items/data-${i}/backups`, SLOW);
        assert.equal(r.status, 202);
        triggered.push(r.body);
      }
      const running = await waitFor(
        'both jobs running',
        async () => {
          const jobs = await Promise.all(triggered.map((j) => w.store.getJob(j.id)));
          return jobs.every((j) => j.state === 'in_progress' && j.bytesDone > 0) ? jobs : null;
        },
        20_000,
        50,
      );
      const hosts = new Set(running.map((j) => j.workerId!.split('#')[0]));
      assert.equal(hosts.size, 2, `the two jobs ran in two processes: ${[...hosts].join(', ')}`);

      // Refused while running, with the blocking job named.
      const refused = await call<{ code: string; blockingJob: { id: string } }>(
        api.url,
        'POST',
        '/api/v1/items/data-0/backups',
      );
      assert.equal(refused.status, 409);
      assert.equal(refused.body.blockingJob.id, triggered[0]!.id);

      // Cancel both through the API process; whichever process runs each job stops within ~1 s.
      for (const job of running) {
        const t0 = Date.now();
        const c = await call(api.url, 'POST', `/api/v1/jobs/${job.id}/cancel`);
        assert.equal(c.status, 202);
        const ended = await waitFor(
          'cancelled',
          async () => ((await w.store.getJob(job.id)).state === 'cancelled' ? true : null),
          5000,
          20,
        );
        assert.ok(ended);
        const ms = Date.now() - t0;
        assert.ok(ms <= 1500, `cancel of a job on ${job.workerId} took ${ms} ms`);
        console.log(
          `serve ${dialect}: cancel via API reached ${job.workerId === running[0]!.workerId ? 'worker A' : 'worker B'} in ${ms} ms`,
        );
      }

      // Retry over HTTP: a new job linked to the old one, run to completion by either process.
      const retry = await call(api.url, 'POST', `/api/v1/jobs/${triggered[0]!.id}/retry`);
      assert.equal(retry.status, 202);
      assert.equal(retry.body.trigger, `retry of ${triggered[0]!.id}`);
      const done = await waitFor(
        'retry to complete',
        async () => {
          const j = await w.store.getJob(retry.body.id);
          return ['completed', 'failed', 'cancelled'].includes(j.state) ? j : null;
        },
        30_000,
        100,
      );
      assert.equal(done.state, 'completed');
      const points = await call<unknown[]>(api.url, 'GET', '/api/v1/items/data-0/points');
      assert.equal(points.body.length, 1);
    });

    test('1,000 concurrent HTTP triggers at one item from 4 client processes: exactly one 202', async () => {
      const results = await httpStorm(api.url, 'data-3', 4, 1000);
      const accepted = results.flatMap((r) => r.accepted);
      const other = results.flatMap((r) => r.other);
      assert.deepEqual(other, [], 'every response is a 202 or a 409 with the catalog code');
      assert.equal(accepted.length, 1);
      for (const r of results) for (const b of r.blockers) assert.equal(b, accepted[0]);
      const lat = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!.toFixed(1);
      console.log(
        `serve ${dialect}: 1,000 HTTP triggers from 4 processes, p50 ${p(0.5)} ms, p99 ${p(0.99)} ms (all in flight at once)`,
      );
      await call(api.url, 'POST', `/api/v1/jobs/${accepted[0]}/cancel`);
    });

    test('server-sent events: the current state first, then progress, then the end', async () => {
      const t = await call(api.url, 'POST', '/api/v1/items/data-2/backups', SLOW);
      assert.equal(t.status, 202);
      const res = await fetch(`${api.url}/api/v1/jobs/${t.body.id}/events`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
      const events: { event: string; data: { state?: string } }[] = [];
      const decoder = new TextDecoder();
      let buffer = '';
      let cancelled = false;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let idx;
        while ((idx = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, idx);
          buffer = buffer.slice(idx + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) as { state?: string } });
        }
        if (!cancelled && events.filter((e) => e.event === 'progress').length >= 2) {
          cancelled = true;
          await call(api.url, 'POST', `/api/v1/jobs/${t.body.id}/cancel`);
        }
      }
      assert.equal(events[0]!.event, 'state', 'a late client gets the current state first');
      assert.ok(events.some((e) => e.event === 'progress'));
      assert.ok(events.some((e) => e.event === 'state' && e.data.state === 'cancelled'));
      assert.equal(events[events.length - 1]!.event, 'end');
    });
  });

  describe(`graceful shutdown (${dialect})`, () => {
    let w: World;
    before(async () => {
      w = await createWorld(dialect, { COFFER_LOG_LEVEL: 'warn' });
      await w.ok(['vault', 'create', 'main', '--path', join(w.root, 'vault')]);
      await makeRandomTree(join(w.root, 'big'), 16, 1024 * 1024);
      await w.ok(['item', 'add', 'big', '--vault', 'main', '--path', join(w.root, 'big')]);
    });
    after(() => w.close());

    test('SIGTERM: no new work, then a job that outlasts the grace period is released as WorkerLost at once', async () => {
      const s = await serve(w, ['--workers', '1', '--grace-seconds', '1']);
      const exited = collect(s.child, 30_000);
      const t = await call(s.url, 'POST', '/api/v1/items/big/backups', SLOW);
      await waitFor(
        'the job to run',
        async () => ((await w.store.getJob(t.body.id)).bytesDone > 0 ? true : null),
        20_000,
        50,
      );
      const t0 = Date.now();
      s.child.kill('SIGTERM');
      const r = await exited;
      const ms = Date.now() - t0;
      assert.equal(r.code, 0, r.stderr);
      const job = await w.store.getJob(t.body.id);
      assert.equal(job.state, 'failed');
      assert.equal(job.errorCode, 'WorkerLost');
      assert.match(job.errorMessage ?? '', /shut down/);
      // The default lease is 30 s: ending in a few seconds proves the release, not the expiry.
      assert.ok(ms < 8000, `shutdown took ${ms} ms`);
      assert.equal((await w.store.listPoints(job.itemId!)).length, 0);
      await w.ok(['check', 'main']);
    });
  });
}
