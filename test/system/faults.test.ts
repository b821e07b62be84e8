/**
 * Workers that die, stall or are cancelled, as real processes (SPEC §2): SIGKILL mid-backup,
 * SIGSTOP past the lease, cancel from another process. Nothing runs twice, nothing stays in
 * progress, nothing half-done becomes a recovery point, and the vault checks clean.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../src/jobs/job.js';
import { dialects } from '../support/catalogs.js';
import { collect, startCoffer, waitFor } from '../support/cli.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';

const LEASE_SECONDS = 2;
const SLOW = ['--limit-read', '2M'];

async function runningJob(w: World, item: string): Promise<Job> {
  const it = await w.store.getItem(item);
  return waitFor(
    `a running backup of ${item} with progress`,
    async () => {
      const [job] = await w.store.listJobs({ itemId: it.id, states: ['in_progress'] });
      return job && job.bytesDone > 0 ? job : null;
    },
    30_000,
    50,
  );
}

async function endedJob(w: World, id: string, timeoutMs = 30_000): Promise<Job> {
  return waitFor(
    `job ${id} to end`,
    async () => {
      await w.store.reapIfExpired();
      const j = await w.store.getJob(id);
      return ['queued', 'in_progress', 'cancelling'].includes(j.state) ? null : j;
    },
    timeoutMs,
    50,
  );
}

async function snapshotFiles(vaultDir: string): Promise<{ committed: string[]; pending: string[] }> {
  const list = async (d: string) =>
    (await readdir(join(vaultDir, d)).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
  return { committed: await list('snapshots'), pending: await list('pending') };
}

for (const dialect of await dialects()) {
  describe(`worker faults (${dialect})`, () => {
    let w: World;
    let vaultDir: string;

    before(async () => {
      w = await createWorld(dialect, { COFFER_LEASE_SECONDS: String(LEASE_SECONDS) });
      vaultDir = join(w.root, 'vault');
      await w.ok(['vault', 'create', 'main', '--path', vaultDir]);
      for (const name of ['killed', 'stopped', 'cancelled', 'interrupted']) {
        await makeRandomTree(join(w.root, name), 24, 1024 * 1024);
        await w.ok(['item', 'add', name, '--vault', 'main', '--path', join(w.root, name)]);
      }
    });
    after(() => w.close());

    test('SIGKILL mid-backup: WorkerLost within the lease TTL plus a second, item free, next backup and check clean', async () => {
      const child = startCoffer(['backup', 'killed', ...SLOW], w.env);
      const exited = collect(child);
      const job = await runningJob(w, 'killed');
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await exited;
      const ended = await endedJob(w, job.id);
      const elapsed = Date.now() - killedAt;
      assert.equal(ended.state, 'failed');
      assert.equal(ended.errorCode, 'WorkerLost');
      assert.ok(elapsed <= LEASE_SECONDS * 1000 + 1000, `WorkerLost after ${elapsed} ms`);
      console.log(`SIGKILL ${dialect}: WorkerLost ${elapsed} ms after the kill (lease ${LEASE_SECONDS}s)`);
      assert.equal((await w.store.listPoints(ended.itemId!)).length, 0);
      const next = await w.ok(['backup', 'killed']);
      assert.match(next.stdout, /completed/);
      await w.ok(['check', 'main']);
    });

    test('SIGSTOP past the lease: another backup runs; the woken worker commits nothing and the vault stays consistent', async () => {
      const before = await snapshotFiles(vaultDir);
      const child = startCoffer(['backup', 'stopped', ...SLOW], w.env);
      const exited = collect(child);
      const job = await runningJob(w, 'stopped');
      child.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, LEASE_SECONDS * 1000 + 600));
      // A new trigger reaps the expired lease in its own transaction and runs to completion.
      const second = await w.run(['backup', 'stopped', '--json']);
      assert.equal(second.code, 0, second.stderr);
      const secondJob = JSON.parse(second.stdout) as { id: string; state: string; recoveryPointId: string };
      assert.equal(secondJob.state, 'completed');
      child.kill('SIGCONT');
      const first = await exited;
      assert.equal(first.code, 1, `the fenced worker must fail: ${first.stderr}`);
      const old = await w.store.getJob(job.id);
      assert.equal(old.state, 'failed');
      assert.equal(old.errorCode, 'WorkerLost');
      assert.equal(old.recoveryPointId, null);
      const points = await w.store.listPoints(old.itemId!);
      assert.deepEqual(
        points.map((p) => p.id),
        [secondJob.recoveryPointId],
      );
      const after = await snapshotFiles(vaultDir);
      assert.equal(
        after.committed.length,
        before.committed.length + 1,
        'only the second backup is visible in storage',
      );
      assert.deepEqual(after.pending, [], 'the fenced snapshot was discarded');
      await w.ok(['check', 'main', '--read-data']);
    });

    test('cancel from another process: cancelled within about a second, no recovery point, check clean', async () => {
      const child = startCoffer(['backup', 'cancelled', ...SLOW], w.env);
      const exited = collect(child);
      const job = await runningJob(w, 'cancelled');
      const cancel = await w.run(['job', 'cancel', job.id]);
      const requestedAt = Date.now();
      assert.equal(cancel.code, 0, cancel.stderr);
      // The command reads the job back after it has told the worker (PostgreSQL's NOTIFY), and a
      // worker that hears it at once may have acknowledged by then: either answer is right.
      assert.match(cancel.stdout, /is cancelling|is cancelled/);
      const ended = await endedJob(w, job.id, 10_000);
      const latency = Date.now() - requestedAt;
      assert.equal(ended.state, 'cancelled');
      assert.equal(ended.errorCode, 'JobCancelled');
      assert.ok(latency <= 1500, `cancel took ${latency} ms`);
      console.log(`cancel ${dialect}: cancelled ${latency} ms after the request`);
      const r = await exited;
      assert.equal(r.code, 1);
      assert.equal((await w.store.listPoints(ended.itemId!)).length, 0);
      // The item is free again, and the vault is intact.
      await w.ok(['check', 'main']);
      const retry = await w.run(['job', 'retry', job.id, '--json']);
      assert.equal(retry.code, 0, retry.stderr);
      const retried = JSON.parse(retry.stdout) as { trigger: string; state: string };
      assert.equal(retried.trigger, `retry of ${job.id}`);
      assert.equal(retried.state, 'completed');
    });

    test('Ctrl-C on a foreground backup cancels it through the catalog and commits nothing', async () => {
      const child = startCoffer(['backup', 'interrupted', ...SLOW], w.env);
      const exited = collect(child);
      const job = await runningJob(w, 'interrupted');
      child.kill('SIGINT');
      const r = await exited;
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cancelling job/);
      assert.match(r.stderr, /JobCancelled/);
      const ended = await w.store.getJob(job.id);
      assert.equal(ended.state, 'cancelled');
      assert.equal(ended.recoveryPointId, null);
      assert.equal((await w.store.listPoints(ended.itemId!)).length, 0);
    });
  });
}
