/**
 * Real schedules, real backups, two `coffer serve` processes on one catalog: per-second
 * schedules whose backups take several seconds, one item per overlap policy. Every due time
 * produces exactly one row (fired, skipped, deferred or missed) however many servers see it,
 * and no item ever has two active backups.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../src/jobs/job.js';
import { dialects } from '../support/catalogs.js';
import { collect, startCoffer, waitFor } from '../support/cli.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';

const OVERLAPS = ['skip', 'queue-one', 'cancel-running'] as const;

for (const dialect of await dialects()) {
  describe(`schedules with two servers (${dialect})`, () => {
    let w: World;
    const servers: ChildProcess[] = [];

    before(async () => {
      w = await createWorld(dialect, { COFFER_LOG_LEVEL: 'warn' });
      await w.ok(['vault', 'create', 'main', '--path', join(w.root, 'vault')]);
      for (const overlap of OVERLAPS) {
        await makeRandomTree(join(w.root, overlap), 6, 1024 * 1024);
        // Each scheduled backup reads 6 MiB at 1 MiB/s: it outlasts its per-second schedule.
        await w.ok([
          'policy',
          'create',
          `every-second-${overlap}`,
          '--schedule',
          '* * * * * *',
          '--tz',
          'UTC',
          '--on-overlap',
          overlap,
          '--limit-read',
          '1M',
          '--paused',
        ]);
        await w.ok([
          'item',
          'add',
          overlap,
          '--vault',
          'main',
          '--path',
          join(w.root, overlap),
          '--policy',
          `every-second-${overlap}`,
        ]);
      }
    });
    after(async () => {
      for (const s of servers) s.kill('SIGTERM');
      await Promise.all(servers.map((s) => collect(s, 30_000).catch(() => undefined)));
      await w.close();
    });

    test('per-second schedules for 8 s: one row per due time, at most one active backup, each overlap policy visible', async () => {
      for (let i = 0; i < 2; i++) {
        const s = startCoffer(['serve', '--port', '0', '--workers', '2', '--grace-seconds', '1'], w.env);
        servers.push(s);
        let out = '';
        s.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        await waitFor('serve to listen', async () => out.includes('listening'), 20_000, 50);
      }
      for (const overlap of OVERLAPS) await w.ok(['policy', 'resume', `every-second-${overlap}`]);
      const items = await Promise.all(OVERLAPS.map((o) => w.store.getItem(o)));
      let maxActive = 0;
      const until = Date.now() + 8000;
      while (Date.now() < until) {
        for (const it of items) maxActive = Math.max(maxActive, await w.store.countActiveExclusive(it.id));
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const overlap of OVERLAPS) await w.ok(['policy', 'pause', `every-second-${overlap}`]);
      assert.equal(maxActive, 1, 'an item had two active backups at a sampled instant');

      const byItem = new Map<string, Job[]>();
      for (const it of items)
        byItem.set(
          it.name,
          (await w.store.listJobs({ itemId: it.id, limit: 1000 })).filter((j) => j.trigger === 'schedule'),
        );
      for (const [name, jobs] of byItem) {
        const due = jobs.map((j) => j.scheduledFor!).sort((a, b) => a - b);
        assert.equal(new Set(due).size, due.length, `${name}: a due time produced two rows`);
        assert.ok(due.length >= 5, `${name}: only ${due.length} scheduled rows`);
        // No gaps: every second from the first to the last due time has its row.
        assert.equal(
          (due[due.length - 1]! - due[0]!) / 1000 + 1,
          due.length,
          `${name}: a due time produced no row`,
        );
        const states = jobs.reduce<Record<string, number>>(
          (acc, j) => ((acc[j.state] = (acc[j.state] ?? 0) + 1), acc),
          {},
        );
        console.log(`schedules ${dialect}: ${name}: ${due.length} due times -> ${JSON.stringify(states)}`);
      }
      const skip = byItem.get('skip')!;
      const skipped = skip.filter(
        (j) => j.state === 'skipped' && j.errorCode === 'UserErrorBackupOperationInProgress',
      );
      assert.ok(skipped.length >= 3);
      const runs = new Set(skip.filter((j) => j.state !== 'skipped').map((j) => j.id));
      assert.ok(
        skipped.every((j) => runs.has(String(j.params.blockingJobId))),
        'each skipped run names the scheduled run that blocked it',
      );

      const queueOne = byItem.get('queue-one')!;
      const waited = [];
      for (const j of queueOne)
        if ((await w.store.listEvents(j.id)).some((e) => e.state === 'deferred')) waited.push(j);
      assert.ok(waited.length >= 1, 'a run waited for the active one (deferred) and then started');
      assert.ok(
        waited.every((j) => j.state !== 'skipped'),
        'a waiting run is started, not dropped',
      );
      assert.ok(queueOne.filter((j) => j.state === 'deferred').length <= 1, 'at most one run waits');
      assert.ok(queueOne.some((j) => j.state === 'skipped' && /already waiting/.test(j.errorMessage ?? '')));

      const cancelRunning = byItem.get('cancel-running')!;
      const replaced = cancelRunning.filter((j) => j.state === 'cancelled' && j.errorCode === 'JobCancelled');
      assert.ok(replaced.length >= 1, 'cancel-running cancelled the running scheduled backup');
      assert.equal(
        cancelRunning.filter((j) => j.state === 'skipped').length,
        0,
        'cancel-running skips nothing when only scheduled runs compete',
      );
    });
  });
}
