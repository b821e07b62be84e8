/**
 * Prune under fire, as real CLI processes: `coffer prune` runs in a loop while backups of three
 * items run in the same vault (two under a keep-last-2 policy whose old data dies, one without a
 * policy that keeps everything). Afterwards every remaining point restores byte-identically to a
 * copy of its source taken right after its backup, `check --read-data` passes, and a final prune
 * shrinks the vault by exactly what it reports as freed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { JobJson } from '../../src/app/job-view.js';
import type { PruneJobResult } from '../../src/app/prune.js';
import { dialects } from '../support/catalogs.js';
import { json } from '../support/cli.js';
import { createWorld, type World } from '../support/world.js';

const exec = promisify(execFile);

/** Rounds of backups per item with a policy; the item without one backs up every other round. */
const ROUNDS = 4;
const NEW_BYTES_PER_ROUND = 1024 * 1024;

/** Every file below `dir` (relative path) with its size. */
async function filesUnder(dir: string, rel = ''): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const r = join(rel, e.name);
    if (e.isDirectory()) for (const [k, v] of await filesUnder(dir, r)) out.set(k, v);
    else out.set(r, (await stat(join(dir, r))).size);
  }
  return out;
}

const total = (files: Map<string, number>) => [...files.values()].reduce((n, v) => n + v, 0);

type PruneJob = JobJson & { result: PruneJobResult };

for (const dialect of await dialects()) {
  describe(`prune while backups run (${dialect})`, () => {
    let w: World;
    const vaultDir = () => join(w.root, 'vault');
    /** pointId -> a copy of the item's source as it was when that point was taken. */
    const expected = new Map<string, string>();

    before(async () => {
      w = await createWorld(dialect);
      await w.ok(['vault', 'create', 'shared', '--path', vaultDir()]);
      // The schedule is paused: this test triggers every backup itself.
      await w.ok([
        'policy',
        'create',
        'rotate',
        '--schedule',
        '0 3 * * *',
        '--tz',
        'Europe/Berlin',
        '--keep-last',
        '2',
        '--paused',
      ]);
      for (const name of ['alpha', 'beta', 'gamma']) {
        const src = join(w.root, 'sources', name);
        await mkdir(src, { recursive: true });
        await writeFile(join(src, 'stable.txt'), `${name} never changes\n`);
        await w.ok([
          'item',
          'add',
          name,
          '--vault',
          'shared',
          '--path',
          src,
          ...(name === 'gamma' ? [] : ['--policy', 'rotate']),
        ]);
      }
    });
    after(() => w.close());

    /** One backup: new data in, the data of two rounds ago out; then a copy of what it saw. */
    async function backupRound(item: string, round: number): Promise<string> {
      const src = join(w.root, 'sources', item);
      await writeFile(join(src, `round-${round}.bin`), randomBytes(NEW_BYTES_PER_ROUND));
      if (item !== 'gamma') await rm(join(src, `round-${round - 2}.bin`), { force: true });
      // Throttled (about three seconds each) so that prunes mark and sweep while backups run,
      // even when starting the prune's own process takes a second or two on a busy machine.
      const job = json<JobJson>(await w.ok(['backup', item, '--json', '--limit-read', '320K']));
      assert.equal(job.state, 'completed', JSON.stringify(job.error));
      const pointId = job.recoveryPointId!;
      const copy = join(w.root, 'expected', pointId);
      await cp(src, copy, { recursive: true, preserveTimestamps: true });
      expected.set(pointId, copy);
      return pointId;
    }

    test('every point restores byte-identically and check --read-data passes', async () => {
      const started = Date.now();
      let backupsRunning = true;
      const backups = (async () => {
        try {
          await Promise.all([
            (async () => {
              for (let r = 1; r <= ROUNDS; r++) await backupRound('alpha', r);
            })(),
            (async () => {
              for (let r = 1; r <= ROUNDS; r++) await backupRound('beta', r);
            })(),
            (async () => {
              for (let r = 1; r <= ROUNDS; r += 2) await backupRound('gamma', r);
            })(),
          ]);
        } finally {
          backupsRunning = false;
        }
      })();
      // The backups' outcome, awaited in every case so no backup outlives a failed test.
      const backupsDone = backups.then(
        () => null,
        (err: unknown) => err,
      );
      const prunes: PruneJob[] = [];
      let pruneError: unknown = null;
      const vaultId = (await w.store.getVault('shared')).id;
      const backupInProgress = async () =>
        (await w.store.listJobs({ vaultId, operations: ['backup'], states: ['in_progress'], limit: 1 }))
          .length > 0;
      while (backupsRunning && !pruneError) {
        // Start each prune while some backup runs, so that the loop proves something every time.
        while (backupsRunning && !(await backupInProgress())) await new Promise((r) => setTimeout(r, 50));
        const r = await w.run(['prune', 'shared', '--json']);
        if (r.code === 0) prunes.push(json<PruneJob>(r));
        else pruneError = new Error(`prune exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
      }
      const backupError = await backupsDone;
      if (pruneError || backupError) throw pruneError ?? backupError;
      const loopMs = Date.now() - started;

      // Prunes really ran while backups ran: some prune overlapped some backup in time.
      const backupJobs = await w.store.listJobs({ operations: ['backup'], limit: 500 });
      const overlapping = prunes.filter((p) =>
        backupJobs.some(
          (b) =>
            b.startedAt !== null &&
            b.endedAt !== null &&
            b.startedAt < Date.parse(p.endedAt!) &&
            Date.parse(p.startedAt!) < b.endedAt,
        ),
      ).length;
      const sum = (f: (p: PruneJob) => number) => prunes.reduce((n, p) => n + f(p), 0);
      const forgotten = sum((p) => p.result.pointsForgotten);
      console.log(
        `prune loop ${dialect}: ${prunes.length} prunes (${overlapping} overlapping backups) beside ${backupJobs.length} backups in ${loopMs} ms; ` +
          `${forgotten} points forgotten, ${sum((p) => p.result.gc.packsDeleted)} packs deleted, ` +
          `${sum((p) => p.result.gc.bytesFreed)} bytes freed, ${sum((p) => p.result.gc.packsRevived)} packs revived, ` +
          `${sum((p) => p.result.gc.packsRepacked)} repacked, max ${Math.max(...prunes.map((p) => p.result.gc.packsWaiting))} packs waiting`,
      );
      assert.ok(prunes.length >= 3, `only ${prunes.length} prunes ran`);
      assert.ok(overlapping >= 2, `only ${overlapping} prunes overlapped a backup`);
      assert.ok(forgotten > 0 && sum((p) => p.result.gc.bytesFreed) > 0);

      // Settle: a prune in a quiet vault forgets what the last backups pushed out and sweeps every
      // list that waited for them. Then one more round for the rotating items, so the measured
      // prune has something to free, and measure a quiet vault around that one prune.
      const settle = json<PruneJob>(await w.ok(['prune', 'shared', '--json']));
      assert.equal(settle.result.gc.packsWaiting, 0, JSON.stringify(settle.result.gc));
      await Promise.all([backupRound('alpha', ROUNDS + 1), backupRound('beta', ROUNDS + 1)]);
      const dry = json<PruneJob>(await w.ok(['prune', 'shared', '--dry-run', '--json']));
      const vaultBefore = await filesUnder(vaultDir());
      const last = json<PruneJob>(await w.ok(['prune', 'shared', '--json']));
      const vaultAfter = await filesUnder(vaultDir());
      const gc = last.result.gc;
      // Pack files that went, and pack files that came (live blobs copied out of mostly dead packs).
      const packs = (m: Map<string, number>) => new Map([...m].filter(([k]) => k.startsWith('data/')));
      const [packsBefore, packsAfter] = [packs(vaultBefore), packs(vaultAfter)];
      const removed = new Map([...packsBefore].filter(([k]) => !packsAfter.has(k)));
      const added = new Map([...packsAfter].filter(([k]) => !packsBefore.has(k)));
      const shrink = total(vaultBefore) - total(vaultAfter);
      console.log(
        `final prune ${dialect}: forgot ${last.result.pointsForgotten} points, deleted ${gc.packsDeleted} packs, freed ${gc.bytesFreed} bytes ` +
          `(dry run predicted ${dry.result.gc.bytesFreed}); ${gc.packsRepacked} packs repacked into ${added.size} new (${total(added)} bytes); ` +
          `vault ${total(vaultBefore)} -> ${total(vaultAfter)} bytes (-${shrink})`,
      );
      assert.equal(last.result.pointsForgotten, 2);
      assert.equal(dry.result.pointsForgotten, 2);
      assert.equal(dry.result.gc.bytesFreed, gc.bytesFreed);
      assert.ok(gc.bytesFreed >= 2 * NEW_BYTES_PER_ROUND, JSON.stringify(gc));
      // The vault shrinks by what was freed: exactly the packs deleted, less the repacked copies.
      assert.equal(removed.size, gc.packsDeleted);
      assert.equal(total(removed), gc.bytesFreed);
      assert.equal(total(packsBefore) - total(packsAfter), gc.bytesFreed - total(added));
      // Beyond packs only index files and condemned lists change, a few KiB at most.
      assert.ok(Math.abs(shrink - (gc.bytesFreed - total(added))) < 64 * 1024, `vault shrank ${shrink}`);

      // Retention kept exactly what the rules say: two points per rotating item, all of gamma's.
      const pointsOf = async (item: string) =>
        json<{ id: string; retention: { keep: boolean; summary: string } }[]>(
          await w.ok(['point', 'list', item, '--json']),
        );
      const all = [];
      for (const item of ['alpha', 'beta', 'gamma']) {
        const pts = await pointsOf(item);
        assert.equal(
          pts.length,
          item === 'gamma' ? Math.ceil(ROUNDS / 2) : 2,
          `${item}: ${pts.length} points`,
        );
        assert.ok(pts.every((p) => p.retention.keep));
        all.push(...pts.map((p) => ({ item, id: p.id })));
      }
      // Every remaining point restores byte-identically.
      const restoreStarted = Date.now();
      // Two at a time (the machine has two cores); each is a real `coffer restore` process.
      const restoreOne = async (p: { item: string; id: string }) => {
        const target = join(w.root, 'restored', p.id);
        await w.ok(['restore', p.item, '--point', p.id, '--target', target]);
        const copy = expected.get(p.id);
        assert.ok(copy, `point ${p.id} of ${p.item} was never recorded`);
        const diff = await exec('diff', ['-r', '--no-dereference', copy, target]).catch(
          (e: { stdout: string; stderr: string }) => e,
        );
        assert.equal((diff as { stdout: string }).stdout, '', `point ${p.id} of ${p.item} differs`);
        await rm(target, { recursive: true, force: true });
      };
      for (let i = 0; i < all.length; i += 2) await Promise.all(all.slice(i, i + 2).map(restoreOne));
      const check = await w.ok(['check', 'shared', '--read-data']);
      assert.match(check.stdout, /no errors were found/);
      console.log(
        `verified ${dialect}: ${all.length} points restored byte-identically in ${Date.now() - restoreStarted} ms, check --read-data passed; total ${Date.now() - started} ms`,
      );
    });

    test('point list and prune --dry-run say in words what stays and what would go', async () => {
      const list = await w.ok(['point', 'list', 'alpha']);
      assert.match(list.stdout, /KEPT BY/);
      assert.match(list.stdout, /last #1/);
      assert.match(list.stdout, /last #2/);
      assert.match((await w.ok(['point', 'list', 'gamma'])).stdout, /no policy: kept/);
      const dry = await w.ok(['prune', 'shared', '--dry-run']);
      assert.match(dry.stdout, /dry run: nothing was deleted/);
      assert.match(dry.stdout, /retention: would forget 0 point\(s\), 6 kept/);
      assert.match(dry.stdout, /alpha: policy rotate \(last 2\): 2 kept, 0 to forget/);
      assert.match(dry.stdout, /gamma: no policy: 2 kept/);
    });

    test('a detached prune waits for a worker, blocks a second prune, and cancels', async () => {
      const queued = json<JobJson>(await w.ok(['prune', 'shared', '--detach', '--json']));
      assert.equal(queued.state, 'queued');
      assert.equal(queued.operation, 'prune');
      const second = await w.run(['prune', 'shared']);
      assert.equal(second.code, 1);
      assert.match(second.stderr + second.stdout, /PruneInProgress/);
      await w.ok(['job', 'cancel', queued.id]);
      const job = await w.store.getJob(queued.id);
      assert.equal(job.state, 'cancelled');
    });
  });
}
