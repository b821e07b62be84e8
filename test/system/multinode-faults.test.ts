/**
 * Issue 7, fault tests 2 and 3, with real `coffer worker` processes on PostgreSQL:
 *  - a worker cut off from PostgreSQL (through a TCP proxy the test controls) past its lease:
 *    another process reaps its job as WorkerLost, the cut-off worker stops and commits nothing,
 *    and once the link returns it rejoins and runs a new job;
 *  - PostgreSQL restarted mid-run (a private cluster, never the shared server): the workers
 *    reconnect, every job completes or fails with a catalog code, nothing stays active, and new
 *    jobs run afterwards.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { triggerBackup } from '../../src/app/triggers.js';
import { isErrorCode } from '../../src/errors/codes.js';
import type { Job } from '../../src/jobs/job.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';
import {
  addItemWithTree,
  allJobs,
  assertVaultClean,
  createFleet,
  isActiveJob,
  restoreMatches,
  storedSnapshots,
  until,
  type Fleet,
} from '../support/multinode.js';
import { privateClusterUnavailable, startPrivateCluster, type PgCluster } from '../support/pg-cluster.js';
import { type CofferProcess, startWorker, stopProcess, workerIdOf } from '../support/processes.js';
import { startTcpProxy, type CutMode, type TcpProxy } from '../support/tcp-proxy.js';
import { manifest } from '../support/trees.js';

const LEASE_SECONDS = 2;
const LEASE_MS = LEASE_SECONDS * 1000;
const hasPostgres = (await dialects()).includes('postgres');

/** Lists the vault's pack files with their sizes: any write by a worker changes it. */
async function packState(vaultDir: string): Promise<string> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(`${p}:${(await stat(p)).size}`);
    }
  };
  await walk(join(vaultDir, 'data'));
  await walk(join(vaultDir, 'index'));
  await walk(join(vaultDir, 'tmp'));
  return out.sort().join('\n');
}

async function runningWithProgress(f: Fleet, itemId: string): Promise<Job> {
  return until(
    'a running backup with progress',
    async () => {
      const [j] = await f.app.store.listJobs({ itemId, states: ['in_progress'] });
      return j && j.bytesDone > 0 ? j : false;
    },
    30_000,
    50,
  );
}

describe(
  'multi-node: a worker cut off from PostgreSQL past its lease (postgres)',
  { skip: !hasPostgres && 'PostgreSQL is not reachable' },
  () => {
    let tc: TestCatalog;
    let f: Fleet;
    let proxy: TcpProxy;
    const procs: CofferProcess[] = [];

    before(async () => {
      tc = await createTestCatalog('postgres');
      f = await createFleet(tc.env, { leaseSeconds: LEASE_SECONDS });
      const url = new URL(tc.databaseUrl!);
      proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    });
    after(async () => {
      await Promise.all(procs.map((p) => stopProcess(p, 'SIGKILL')));
      await proxy?.close();
      await f?.close();
      await tc?.cleanup();
    });

    for (const mode of ['blackhole', 'reset'] as CutMode[]) {
      test(`${mode}: WorkerLost by another process, the cut-off worker stops and commits nothing, then rejoins`, async () => {
        const item = await addItemWithTree(f, `cut-${mode}`, 16, 512 * 1024);
        const expected = await manifest(item.dir);
        const proxied = new URL(tc.databaseUrl!);
        proxied.host = proxy.address;
        const cutWorker = await startWorker({ ...f.env, COFFER_DATABASE_URL: proxied.toString() });
        procs.push(cutWorker);
        const cutId = workerIdOf(cutWorker);
        // 8 MiB at 512 KiB/s: the backup is still reading long after the lease has run out.
        const { job } = await triggerBackup(f.app, item.id, {
          requestedBy: 'fault-test',
          limitReadBytesPerSec: 512 * 1024,
        });
        const running = await runningWithProgress(f, item.id);
        assert.equal(running.id, job.id);
        assert.equal(running.workerId, cutId);
        // The reaper: another worker on a direct connection (idle, so its claim loop reaps).
        const reaper = await startWorker(f.env);
        procs.push(reaper);

        proxy.cut(mode);
        const cutAt = Date.now();
        const lostAfterMs = await until(
          'the job to be reaped as WorkerLost',
          async () => {
            const j = await f.app.store.getJob(job.id);
            return isActiveJob(j) ? `still ${j.state}` : true;
          },
          LEASE_MS + 10_000,
          50,
        ).then(() => Date.now() - cutAt);
        const reaped = await f.app.store.getJob(job.id);
        assert.equal(reaped.state, 'failed');
        assert.equal(reaped.errorCode, 'WorkerLost');
        assert.equal(reaped.recoveryPointId, null);
        assert.ok(
          lostAfterMs <= LEASE_MS + 5000,
          `WorkerLost ${lostAfterMs} ms after the cut (lease ${LEASE_MS} ms)`,
        );
        const eventsAtReap = await f.app.store.listEvents(job.id);

        // The cut-off worker stops by itself, on its own clock, while still cut off.
        const ended = await cutWorker.waitForLog(
          'that it lost the job',
          (l) => l.msg === 'job ended' && l.jobId === job.id,
          LEASE_MS + 10_000,
        );
        assert.equal(ended.state, 'lost');
        assert.equal(ended.errorCode, 'LeaseLost');
        const stoppedAfterMs = Date.parse(String(ended.time)) - cutAt;
        assert.ok(
          stoppedAfterMs <= LEASE_MS + 2000,
          `the cut-off worker stopped ${stoppedAfterMs} ms after the cut`,
        );
        // ... and writes nothing more to the vault while it stays cut off.
        const packsAfterStop = await packState(f.vaultDir);
        await new Promise((r) => setTimeout(r, 1000)); // an observation window for writes that must not happen
        assert.equal(await packState(f.vaultDir), packsAfterStop, 'the stopped worker wrote to the vault');

        // The link returns: whatever the worker had in flight is delivered now, and changes nothing.
        const acceptedBefore = proxy.accepted;
        proxy.restore();
        // The reaper leaves, so the next job can only be run by the worker that was cut off.
        await stopProcess(reaper);
        const { job: next } = await triggerBackup(f.app, item.id, { requestedBy: 'fault-test' });
        const done = await until(
          'the rejoined worker to run a new backup',
          async () => {
            const j = await f.app.store.getJob(next.id);
            return isActiveJob(j) ? false : j;
          },
          60_000,
        );
        assert.equal(done.state, 'completed', `${done.errorCode}: ${done.errorMessage}`);
        assert.equal(done.workerId, cutId, 'the worker that was cut off ran it');
        assert.ok(cutWorker.alive);
        if (mode === 'reset') assert.ok(proxy.accepted > acceptedBefore, 'it reconnected through the proxy');

        // Nothing from the lost run: the job is exactly as the reaper left it, no point, no snapshot.
        const lost = await f.app.store.getJob(job.id);
        assert.equal(lost.state, 'failed');
        assert.equal(lost.errorCode, 'WorkerLost');
        assert.equal(lost.updatedAt, reaped.updatedAt, 'no later state change by the cut-off worker');
        assert.deepEqual(await f.app.store.listEvents(job.id), eventsAtReap);
        const points = await f.app.store.listPoints(item.id);
        assert.deepEqual(
          points.map((p) => p.jobId),
          [next.id],
        );
        // The next job's snapshot moves from pending/ to snapshots/ just after its job completes
        // in the catalog (afterCommit): wait for that, so what stays pending is the lost run's.
        const stored = await until(
          'no pending snapshot in the vault',
          async () => {
            const s = await storedSnapshots(f.vaultDir);
            return s.pending.length === 0
              ? s
              : `pending ${s.pending.join(', ')}; the catalog's point is ${points[0]!.id}`;
          },
          10_000,
        );
        const allPoints = new Set(
          (await Promise.all((await f.app.store.listItems()).map((i) => f.app.store.listPoints(i.id))))
            .flat()
            .map((p) => p.id),
        );
        for (const s of stored.committed)
          assert.ok(allPoints.has(s), `snapshot ${s} is visible without a catalog point`);
        assert.deepEqual(await restoreMatches(f, points[0]!.id, expected), []);
        await assertVaultClean(f);
        await stopProcess(cutWorker);
        console.log(
          `partition (${mode}): WorkerLost ${lostAfterMs} ms after the cut; the cut-off worker stopped after ${stoppedAfterMs} ms (lease ${LEASE_MS} ms)`,
        );
      });
    }
  },
);

describe(
  'multi-node: PostgreSQL restarted mid-run (private cluster)',
  { skip: !hasPostgres && 'PostgreSQL is not reachable' },
  () => {
    let cluster: PgCluster | null = null;
    let f: Fleet | null = null;
    let home = '';
    const procs: CofferProcess[] = [];
    let unavailable: string | null = null;

    before(async () => {
      unavailable = await privateClusterUnavailable();
      if (unavailable) return;
      try {
        cluster = await startPrivateCluster();
      } catch (err) {
        unavailable = `initdb/pg_ctl failed: ${(err as Error).message.trim().slice(0, 500)}`;
        return;
      }
      const admin = new pg.Client({ connectionString: cluster.url });
      await admin.connect();
      await admin.query('create database coffer_restart');
      await admin.end();
      const url = new URL(cluster.url);
      url.pathname = '/coffer_restart';
      home = await mkdtemp(join(tmpdir(), 'coffer-restart-home-'));
      f = await createFleet(
        { COFFER_HOME: home, COFFER_DATABASE_URL: url.toString() },
        { leaseSeconds: LEASE_SECONDS },
      );
    });
    after(async () => {
      await Promise.all(procs.map((p) => stopProcess(p, 'SIGKILL')));
      await f?.close();
      await cluster?.destroy();
      if (home) await rm(home, { recursive: true, force: true });
    });

    const cases = [
      { mode: 'fast', outageMs: 0 },
      { mode: 'immediate', outageMs: LEASE_MS + 1500 },
    ] as const;
    for (const { mode, outageMs } of cases) {
      const what = outageMs ? `stopped -m ${mode} for longer than the lease` : `restarted -m ${mode}`;
      test(`${what} during backups: workers reconnect, every job ends with a catalog code, new jobs run`, async (t) => {
        if (unavailable || !f || !cluster)
          return t.skip(`cannot start a private PostgreSQL cluster: ${unavailable}`);
        const fleet = f;
        const items = await Promise.all(
          [0, 1, 2].map((i) => addItemWithTree(fleet, `restart-${mode}-${i}`, 8, 512 * 1024)),
        );
        const expected = new Map<string, Map<string, string>>();
        for (const it of items) expected.set(it.id, await manifest(it.dir));
        const workers = [await startWorker(fleet.env), await startWorker(fleet.env)];
        procs.push(...workers);
        const first: Job[] = [];
        for (const it of items)
          first.push(
            (
              await triggerBackup(fleet.app, it.id, {
                requestedBy: 'fault-test',
                limitReadBytesPerSec: 1024 * 1024,
              })
            ).job,
          );
        await until(
          'two backups running with progress',
          async () =>
            (await allJobs(fleet.app)).filter((j) => j.state === 'in_progress' && j.bytesDone > 0).length >=
            2,
          30_000,
          50,
        );

        const restartAt = Date.now();
        if (outageMs) {
          await cluster.stopServer(mode);
          await new Promise((r) => setTimeout(r, outageMs)); // the outage's length, not a wait for an outcome
          await cluster.start();
        } else await cluster.restart(mode);
        const restartMs = Date.now() - restartAt;

        // Every job of the run ends (this process's own connections also died: reads may fail once).
        const safeJobs = async (): Promise<Job[] | null> => allJobs(fleet.app).catch(() => null);
        await until(
          'every job of the run to end',
          async () => {
            const jobs = await safeJobs();
            if (!jobs) return 'catalog not reachable yet';
            const active = jobs.filter((j) => first.some((x) => x.id === j.id) && isActiveJob(j));
            return active.length === 0 || active.map((j) => `${j.id} ${j.state}`).join(', ');
          },
          LEASE_MS + 60_000,
          200,
        );
        const ends: string[] = [];
        for (const j0 of first) {
          const j = await fleet.app.store.getJob(j0.id);
          ends.push(`${j.state}${j.errorCode ? `/${j.errorCode}` : ''}`);
          if (j.state === 'completed') continue;
          assert.equal(j.state, 'failed', `job ${j.id} ended ${j.state}`);
          assert.ok(
            j.errorCode && isErrorCode(j.errorCode) && j.errorCode !== 'InternalError',
            `job ${j.id} failed with ${j.errorCode}: ${j.errorMessage}`,
          );
          assert.ok(j.errorMessage, 'a failure says what happened');
        }
        for (const w of workers)
          assert.ok(w.alive, `${w.describe()} survived the restart:\n${w.stderr.slice(-2000)}`);

        // New jobs run on the same, reconnected workers.
        const second: Job[] = [];
        for (const it of items)
          second.push((await triggerBackup(fleet.app, it.id, { requestedBy: 'fault-test' })).job);
        const ids = new Set(workers.map(workerIdOf));
        for (const j0 of second) {
          const j = await until(
            `job ${j0.id} to end`,
            async () => {
              const j = await fleet.app.store.getJob(j0.id);
              return isActiveJob(j) ? false : j;
            },
            60_000,
          );
          assert.equal(j.state, 'completed', `${j.errorCode}: ${j.errorMessage}`);
          assert.ok(ids.has(j.workerId!), `run by one of the reconnected workers, not ${j.workerId}`);
        }
        for (const it of items)
          for (const p of await fleet.app.store.listPoints(it.id))
            assert.deepEqual(await restoreMatches(fleet, p.id, expected.get(it.id)!), [], `point ${p.id}`);
        await assertVaultClean(fleet);
        await Promise.all(workers.map((w) => stopProcess(w)));
        console.log(
          `PostgreSQL ${what} (down ${restartMs} ms): first jobs ended ${ends.join(', ')}; 3 new backups completed`,
        );
      });
    }
  },
);
