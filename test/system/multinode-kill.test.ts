/**
 * Issue 7, fault test 1: random SIGKILL of workers during backups, 3 `coffer worker` processes
 * on one PostgreSQL catalog, COFFER_FAULT_CYCLES cycles (100 by default; CI runs 100).
 *
 * The test alone triggers backups, and changes an item's source tree only while the item has no
 * active job, so every admitted backup has exactly one expected content (its version). While
 * workers die, the catalog is sampled: never two active jobs for one item. Afterwards: every job
 * a killed worker held ended `WorkerLost` (reaped by the other workers' claim loops), no job is
 * active without a live lease, every committed recovery point restores byte-identically to its
 * version, no snapshot is visible in storage without a catalog point, and
 * `coffer check --read-data` is clean.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { triggerBackup } from '../../src/app/triggers.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';
import {
  activeWithoutLiveLease,
  addItemWithTree,
  allJobs,
  assertVaultClean,
  createFleet,
  doubleActiveItems,
  isActiveJob,
  restoreMatches,
  storedSnapshots,
  until,
  type Fleet,
} from '../support/multinode.js';
import { type CofferProcess, startWorker, stopProcess, workerIdOf } from '../support/processes.js';
import { manifest } from '../support/trees.js';

const CYCLES = Number(process.env.COFFER_FAULT_CYCLES || 100);
const WORKERS = 3;
const ITEMS = 4;
const LEASE_SECONDS = 2;
/** Backups read new data at this rate, so a kill usually lands mid-backup. */
const READ_LIMIT = 768 * 1024;

const hasPostgres = (await dialects()).includes('postgres');

describe(
  'multi-node: random SIGKILL of workers during backups (postgres)',
  { skip: !hasPostgres && 'PostgreSQL is not reachable' },
  () => {
    let tc: TestCatalog;
    let f: Fleet;
    const workers: CofferProcess[] = [];

    before(async () => {
      tc = await createTestCatalog('postgres');
      f = await createFleet(tc.env, { leaseSeconds: LEASE_SECONDS });
    });
    after(async () => {
      await Promise.all(workers.map((w) => stopProcess(w, 'SIGKILL')));
      await f?.close();
      await tc?.cleanup();
    });

    test(`${CYCLES} cycles across ${WORKERS} workers: no double job, WorkerLost for every killed job, every point restores, check clean`, async () => {
      const started = Date.now();
      const items: {
        name: string;
        id: string;
        dir: string;
        version: number;
        current: Map<string, string>;
      }[] = [];
      for (let i = 0; i < ITEMS; i++) {
        const name = `item-${i}`;
        const { id, dir } = await addItemWithTree(f, name, 4, 192 * 1024);
        items.push({ name, id, dir, version: 0, current: await manifest(dir) });
      }
      /** What each admitted backup must contain: the item's tree when the job was admitted. */
      const expectedByJob = new Map<string, Map<string, string>>();

      for (let i = 0; i < WORKERS; i++) workers.push(await startWorker(f.env));

      let stop = false;
      const errors: string[] = [];

      // Triggers: keep every item busy. The source changes only while the item has no active job.
      const triggering = (async () => {
        while (!stop) {
          for (const it of items) {
            if (stop) break;
            try {
              const blocking = await f.app.store.activeExclusiveJob(it.id);
              if (blocking && blocking.leaseExpiresAt !== null && blocking.leaseExpiresAt >= Date.now())
                continue;
              if (blocking && blocking.state === 'queued') continue;
              if (!blocking) {
                // A new version: one new file of new data; the oldest added file goes.
                it.version++;
                await writeFile(
                  join(it.dir, `v-${String(it.version).padStart(4, '0')}.bin`),
                  randomBytes(randomInt(128, 512) * 1024),
                );
                const added = (await readdir(it.dir)).filter((n) => n.startsWith('v-')).sort();
                if (added.length > 3) await rm(join(it.dir, added[0]!));
                it.current = await manifest(it.dir);
              }
              const { job } = await triggerBackup(f.app, it.id, {
                requestedBy: 'fault-test',
                limitReadBytesPerSec: READ_LIMIT,
              });
              expectedByJob.set(job.id, it.current);
            } catch (err) {
              if (!isCofferError(err, 'UserErrorBackupOperationInProgress'))
                errors.push(`trigger ${it.name}: ${(err as Error).message}`);
            }
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      })();

      // Sampling: one statement per sample, so each is one instant of the catalog.
      let samples = 0;
      const doubles: string[] = [];
      const sampling = (async () => {
        while (!stop) {
          try {
            const rows = await doubleActiveItems(f.app);
            samples++;
            for (const r of rows) doubles.push(`${r.item_id}: ${r.n} active jobs`);
          } catch (err) {
            errors.push(`sample: ${(err as Error).message}`);
          }
          await new Promise((r) => setTimeout(r, 25));
        }
      })();

      /** Jobs that were active, held by a worker, at the moment that worker was killed. */
      const killedJobs = new Map<string, string>();
      let killsMidBackup = 0;
      // A slot's replacement starts in the background; the next cycle picks among ready workers.
      const slots: (CofferProcess | Promise<CofferProcess>)[] = [...workers];
      const ready = (): { w: CofferProcess; i: number }[] =>
        slots.flatMap((s, i) => (s instanceof Promise ? [] : [{ w: s, i }]));
      let lastKillAt = 0;
      try {
        for (let c = 0; c < CYCLES; c++) {
          // Pacing only (not a correctness wait): let the fleet work for a moment.
          await new Promise((r) => setTimeout(r, randomInt(250, 750)));
          // At least two workers up, so one is always left to reap and to run the queue.
          while (ready().length < Math.min(2, WORKERS))
            await Promise.race(slots.filter((s) => s instanceof Promise));
          // Mostly a worker in the middle of a backup; sometimes any worker (idle, claiming, finishing).
          const midBackup = randomInt(0, 5) > 0;
          const pick = await until(
            'a worker to pick',
            async () => {
              const up = ready();
              if (!midBackup) return up[randomInt(0, up.length)]!;
              const running = (await allJobs(f.app)).filter(
                (j) => j.state === 'in_progress' && j.bytesDone > 0,
              );
              const busy = up.filter(({ w }) => running.some((j) => j.workerId === workerIdOf(w)));
              return busy.length ? busy[randomInt(0, busy.length)]! : false;
            },
            30_000,
            50,
          );
          const victimId = workerIdOf(pick.w);
          pick.w.kill('SIGKILL');
          await pick.w.exited;
          lastKillAt = Date.now();
          const held = (await allJobs(f.app)).filter((j) => isActiveJob(j) && j.workerId === victimId);
          for (const j of held) killedJobs.set(j.id, victimId);
          if (held.some((j) => j.bytesDone > 0)) killsMidBackup++;
          if (process.env.COFFER_FAULT_DEBUG)
            console.log(c, ready().length, midBackup, held.map((j) => `${j.state}:${j.bytesDone}`).join(','));
          const replacement = startWorker(f.env);
          slots[pick.i] = replacement;
          void replacement.then(
            (w) => {
              slots[pick.i] = w;
              workers.push(w);
            },
            () => undefined,
          );
        }
      } finally {
        stop = true;
        await Promise.all([triggering, sampling]);
        await Promise.all(slots);
      }
      const cyclesDone = Date.now();
      assert.deepEqual(errors, [], 'triggers and samples run without unexpected errors');
      assert.deepEqual(doubles, [], `an item had two active jobs (in ${samples} samples)`);
      assert.ok(samples > CYCLES, `the catalog was sampled often (${samples} samples)`);
      assert.ok(killsMidBackup >= CYCLES / 4, `kills landed mid-backup: ${killsMidBackup} of ${CYCLES}`);

      // Recovery: the live workers' claim loops reap every expired lease; nothing waits for a restart.
      await until(
        "every killed worker's job to be reaped by the other workers",
        async () => {
          const left = (await allJobs(f.app)).filter((j) => killedJobs.has(j.id) && isActiveJob(j));
          return left.length === 0 || `${left.length} still active`;
        },
        LEASE_SECONDS * 1000 + 10_000,
      );
      const reapMs = Date.now() - lastKillAt;
      // Then the queue drains. Every active job is held under a live lease; one whose lease
      // runs out (a worker starved of CPU on a loaded machine) must be reaped promptly.
      const staleSince = new Map<string, number>();
      await until(
        'the queue to drain',
        async () => {
          const stale = await activeWithoutLiveLease(f.app);
          for (const j of stale) {
            const since = staleSince.get(j.id) ?? Date.now();
            staleSince.set(j.id, since);
            assert.ok(Date.now() - since < 5000, `job ${j.id} stayed active without a live lease for 5 s`);
          }
          const active = (await allJobs(f.app)).filter(isActiveJob);
          return active.length === 0 || `${active.length} active job(s)`;
        },
        60_000,
        200,
      );

      const jobs = await allJobs(f.app);
      for (const [id, worker] of killedJobs) {
        const j = jobs.find((x) => x.id === id)!;
        assert.equal(j.state, 'failed', `job ${id}, held by killed worker ${worker}, ended ${j.state}`);
        assert.equal(j.errorCode, 'WorkerLost', `job ${id} failed with ${j.errorCode}`);
        assert.equal(j.recoveryPointId, null);
      }
      const byState = new Map<string, number>();
      for (const j of jobs) {
        byState.set(j.state, (byState.get(j.state) ?? 0) + 1);
        assert.ok(
          j.state === 'completed' || (j.state === 'failed' && j.errorCode === 'WorkerLost'),
          `job ${j.id} ended ${j.state} ${j.errorCode}: ${j.errorMessage}`,
        );
      }
      // After the storm, the surviving fleet still works: one more backup of every item completes.
      for (const it of items) {
        const { job } = await triggerBackup(f.app, it.id, { requestedBy: 'fault-test' });
        expectedByJob.set(job.id, it.current);
        const ended = await until(
          `the final backup of ${it.name}`,
          async () => {
            const j = await f.app.store.getJob(job.id);
            return isActiveJob(j) ? false : j;
          },
          60_000,
        );
        assert.equal(ended.state, 'completed', `${ended.errorCode}: ${ended.errorMessage}`);
        byState.set('completed', (byState.get('completed') ?? 0) + 1);
      }

      // Every committed point restores byte-identically to the version its job was admitted with.
      const finalJobs = await allJobs(f.app);
      const pointIds = new Set<string>();
      for (const it of items) {
        for (const p of await f.app.store.listPoints(it.id)) {
          pointIds.add(p.id);
          const job = finalJobs.find((j) => j.id === p.jobId)!;
          assert.equal(job.state, 'completed');
          assert.equal(job.recoveryPointId, p.id);
          const expected = expectedByJob.get(p.jobId);
          assert.ok(expected, `point ${p.id} comes from a job this test admitted`);
          assert.deepEqual(await restoreMatches(f, p.id, expected), [], `point ${p.id} of ${it.name}`);
        }
      }
      assert.equal(pointIds.size, byState.get('completed'));
      // Fencing: nothing is visible in storage that the catalog did not commit.
      const stored = await storedSnapshots(f.vaultDir);
      for (const s of stored.committed)
        assert.ok(pointIds.has(s), `snapshot ${s} is visible without a catalog point`);
      // The operator's path too: the latest point of each item through the CLI.
      for (const it of items) {
        const target = join(f.root, `cli-restore-${it.name}`);
        await f.ok(['restore', it.name, '--target', target]);
        const latest = (await f.app.store.listPoints(it.id))[0]!;
        assert.deepEqual([...(await manifest(target))], [...expectedByJob.get(latest.jobId)!]);
      }
      await assertVaultClean(f);

      console.log(
        `SIGKILL cycles: ${CYCLES} kills (${killsMidBackup} mid-backup, ${killedJobs.size} jobs lost) in ${((cyclesDone - started) / 1000).toFixed(1)} s; ` +
          `${samples} samples; jobs ${JSON.stringify(Object.fromEntries(byState))}; ${pointIds.size} points restored; ` +
          `the last lost job reaped ${reapMs} ms after its kill (lease ${LEASE_SECONDS} s); total ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    });
  },
);
