/**
 * The worker registry with real processes: two `coffer worker` processes show in
 * `coffer worker list` and `GET /api/v1/workers` with the job each holds; a SIGKILLed worker
 * turns lost after three missed heartbeats while a SIGTERMed one deregisters. And an idle
 * worker picks up a detached job: on PostgreSQL through a notice, well before its next poll.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dialects } from '../support/catalogs.js';
import { collect, json, startCoffer, waitFor } from '../support/cli.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';

interface HeldJob {
  id: string;
  operation: string;
  state: string;
  item: { id: string; name: string | null } | null;
  slot: string;
  leaseExpiresAt: string | null;
}
interface WorkerBody {
  id: string;
  host: string;
  pid: number;
  kind: string;
  state: string;
  concurrency: number;
  jobs: HeldJob[];
}

async function serve(w: World): Promise<{ child: ChildProcess; url: string }> {
  const child = startCoffer(['serve', '--port', '0', '--workers', '0', '--no-scheduler'], w.env);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await waitFor(
    'coffer serve to listen',
    async () => /listening on (http:\/\/\S+)/.exec(out)?.[1],
  );
  return { child, url };
}

async function workerList(w: World, all = false): Promise<WorkerBody[]> {
  return json<WorkerBody[]>(await w.ok(['worker', 'list', '--json', ...(all ? ['--all'] : [])]));
}

for (const dialect of await dialects()) {
  describe(`worker registry (${dialect})`, () => {
    let w: World;
    let api: { child: ChildProcess; url: string };
    const workers: ChildProcess[] = [];

    before(async () => {
      // A 2 s lease: workers heartbeat the registry every 667 ms and are lost 2 s after the last.
      w = await createWorld(dialect, { COFFER_LOG_LEVEL: 'warn', COFFER_LEASE_SECONDS: '2' });
      await w.ok(['vault', 'create', 'main', '--path', join(w.root, 'vault')]);
      for (const name of ['alpha', 'beta', 'gamma']) {
        await makeRandomTree(join(w.root, name), 16, 1024 * 1024);
        await w.ok(['item', 'add', name, '--vault', 'main', '--path', join(w.root, name)]);
      }
      api = await serve(w);
    });
    after(async () => {
      for (const c of [...workers, api.child])
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await w.close();
    });

    test('two worker processes are listed with the job each holds; a killed one turns lost, a stopped one leaves', async () => {
      const a = startCoffer(['worker'], w.env);
      const b = startCoffer(['worker'], w.env);
      workers.push(a, b);
      const bExit = collect(b, 60_000);
      await waitFor('both workers registered', async () => (await workerList(w)).length === 2);

      const jobIds: string[] = [];
      for (const item of ['alpha', 'beta']) {
        const r = json<{ id: string }>(
          await w.ok(['backup', item, '--detach', '--limit-read', '1M', '--json']),
        );
        jobIds.push(r.id);
      }
      const listed = await waitFor('each worker to hold one running backup', async () => {
        const ws = await workerList(w);
        return ws.length === 2 && ws.every((x) => x.jobs.length === 1 && x.jobs[0]!.state === 'in_progress')
          ? ws
          : null;
      });
      assert.deepEqual(listed.map((x) => x.pid).sort(), [a.pid, b.pid].sort());
      assert.deepEqual(listed.flatMap((x) => x.jobs.map((j) => j.id)).sort(), [...jobIds].sort());
      for (const x of listed) {
        assert.equal(x.state, 'live');
        assert.equal(x.kind, 'worker');
        assert.equal(x.concurrency, 1);
        const job = x.jobs[0]!;
        assert.equal(job.slot, x.id, 'a one-slot worker holds its lease under its own id');
        assert.ok(job.leaseExpiresAt && Date.parse(job.leaseExpiresAt) > Date.now() - 5000);
        assert.match(job.item?.name ?? '', /^(alpha|beta)$/);
        // The job view names the same host and pid.
        const shown = json<{ worker: string; workerHost: string; workerPid: number }>(
          await w.ok(['job', 'show', job.id, '--json']),
        );
        assert.equal(shown.workerPid, x.pid);
        assert.equal(shown.workerHost, x.host);
      }

      // The HTTP API shows the same workers and jobs.
      const res = await fetch(`${api.url}/api/v1/workers`);
      assert.equal(res.status, 200);
      const overHttp = (await res.json()) as WorkerBody[];
      assert.deepEqual(
        overHttp.map((x) => [x.id, x.jobs.map((j) => j.id)]).sort(),
        listed.map((x) => [x.id, x.jobs.map((j) => j.id)]).sort(),
      );

      // SIGKILL: no deregistration; the worker turns lost after three missed heartbeats.
      const killedId = listed.find((x) => x.pid === a.pid)!.id;
      const heldByKilled = listed.find((x) => x.pid === a.pid)!.jobs[0]!.id;
      a.kill('SIGKILL');
      const killedAt = Date.now();
      await waitFor('the killed worker to leave the live list', async () =>
        (await workerList(w)).every((x) => x.id !== killedId),
      );
      const lostAfter = Date.now() - killedAt;
      assert.ok(lostAfter < 6000, `lost after ${lostAfter} ms`);
      const all = await workerList(w, true);
      assert.equal(all.find((x) => x.id === killedId)?.state, 'lost');
      const lostHttp = (await (await fetch(`${api.url}/api/v1/workers?all=true`)).json()) as WorkerBody[];
      assert.equal(lostHttp.find((x) => x.id === killedId)?.state, 'lost');
      assert.equal(((await (await fetch(`${api.url}/api/v1/workers`)).json()) as WorkerBody[]).length, 1);
      // Its job is recovered by lease expiry as always.
      await waitFor('the killed worker job to fail WorkerLost', async () => {
        const j = json<{ state: string; error: { code: string } | null }>(
          await w.ok(['job', 'show', heldByKilled, '--json']),
        );
        return j.state === 'failed' && j.error?.code === 'WorkerLost';
      });

      // SIGTERM after a cancel: the worker acknowledges, stops and deregisters itself.
      const bJob = listed.find((x) => x.pid === b.pid)!.jobs[0]!.id;
      await w.ok(['job', 'cancel', bJob, '--wait']);
      b.kill('SIGTERM');
      const bEnd = await bExit;
      assert.equal(bEnd.code, 0, bEnd.stderr);
      const after = await workerList(w, true);
      assert.deepEqual(
        after.map((x) => x.id),
        [killedId],
        'the stopped worker left the registry; only the killed one remains, as lost',
      );
    });

    test('an idle worker picks up a detached job; on PostgreSQL a notice wakes it well before its next poll', async () => {
      // On PostgreSQL the worker polls only once a minute here, so only the notice can be fast.
      const env = dialect === 'postgres' ? { COFFER_WORKER_POLL_MS: '60000' } : {};
      const worker = startCoffer(['worker'], { ...w.env, ...env });
      workers.push(worker);
      await waitFor('the worker registered', async () =>
        (await workerList(w)).some((x) => x.pid === worker.pid),
      );
      // Past its first claim attempt, and (PostgreSQL) listening.
      await new Promise((r) => setTimeout(r, 1500));
      const latencies: number[] = [];
      for (let round = 0; round < 3; round++) {
        const r = json<{ id: string }>(await w.ok(['backup', 'gamma', '--detach', '--json']));
        const job = await waitFor(
          'the detached job to end',
          async () => {
            const j = await w.store.getJob(r.id);
            return j.endedAt !== null ? j : null;
          },
          30_000,
          50,
        );
        assert.equal(job.state, 'completed', `${job.errorCode ?? ''} ${job.errorMessage ?? ''}`);
        assert.ok(job.workerId?.includes(`:${worker.pid}:`), `run by the idle worker, not ${job.workerId}`);
        latencies.push(job.startedAt! - job.createdAt);
        await new Promise((r) => setTimeout(r, 300));
      }
      const worst = Math.max(...latencies);
      if (dialect === 'postgres') {
        assert.ok(worst < 1000, `queued → started took ${latencies.join(', ')} ms with a 60 s poll`);
      } else {
        assert.ok(worst < 3000, `queued → started took ${latencies.join(', ')} ms with a 250 ms poll`);
      }
      process.stderr.write(`# ${dialect}: queued → started ${latencies.join(', ')} ms\n`);
      worker.kill('SIGTERM');
      assert.equal((await collect(worker, 30_000)).code, 0);
    });
  });
}
