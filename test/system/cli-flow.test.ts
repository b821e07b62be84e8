/**
 * The operator's walk through the README, as real CLI processes: two vaults, protect, back
 * up, a refused second trigger, cancel, retry, move and the old vault's job blocking, restore
 * byte-identical, wrong password, self-help.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, rm, symlink, chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { dialects } from '../support/catalogs.js';
import { collect, json, startCoffer, waitFor } from '../support/cli.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';

const exec = promisify(execFile);

/** Every entry's type, mode and symlink target, to compare trees beyond their bytes. */
async function treeListing(dir: string): Promise<string> {
  const { stdout } = await exec('find', ['.', '-printf', '%y %m %l %s %p\n'], {
    cwd: dir,
    maxBuffer: 64 * 1024 * 1024,
  });
  // A directory's own size depends on how its entries were created, not on its content.
  return stdout
    .split('\n')
    .map((l) => (l.startsWith('d ') ? l.replace(/^(d \d+ \S*) \d+ /, '$1 - ') : l))
    .sort()
    .join('\n');
}

for (const dialect of await dialects()) {
  describe(`CLI end to end (${dialect})`, () => {
    let w: World;

    before(async () => {
      w = await createWorld(dialect);
      await w.ok(['vault', 'create', 'alpha', '--path', join(w.root, 'vault-alpha')]);
      // beta compresses at zstd level 1: every test that moves an item there backs up through it.
      await w.ok(['vault', 'create', 'beta', '--path', join(w.root, 'vault-beta'), '--compression', 'fast']);
    });
    after(() => w.close());

    test('round trip of a real tree is byte-identical, with modes, symlinks, empty dirs and unicode names', async () => {
      const src = join(w.root, 'docs');
      await cp('/usr/share/doc', src, { recursive: true, verbatimSymlinks: true });
      await mkdir(join(src, 'empty', 'nested-empty'), { recursive: true });
      await writeFile(join(src, 'Ünïcødé — 文件.txt'), 'grüße\n');
      await writeFile(join(src, 'script.sh'), '#!/bin/sh\necho hi\n');
      await chmod(join(src, 'script.sh'), 0o750);
      await symlink('Ünïcødé — 文件.txt', join(src, 'link-to-unicode'));
      await symlink('/nonexistent/target', join(src, 'dangling'));
      await w.ok(['item', 'add', 'docs', '--vault', 'alpha', '--path', src]);
      const t0 = Date.now();
      const backup = json<{ state: string; bytesScanned: number; progress: { filesDone: number } }>(
        await w.ok(['backup', 'docs', '--json']),
      );
      const backupMs = Date.now() - t0;
      assert.equal(backup.state, 'completed');
      const target = join(w.root, 'restored-docs');
      const t1 = Date.now();
      await w.ok(['restore', 'docs', '--target', target]);
      const restoreMs = Date.now() - t1;
      const diff = await exec('diff', ['-r', '--no-dereference', src, target]).catch(
        (e: { stdout: string }) => e,
      );
      assert.equal((diff as { stdout: string }).stdout, '', 'restore differs from the source');
      assert.equal(await treeListing(target), await treeListing(src));
      const mb = backup.bytesScanned / 1024 / 1024;
      console.log(
        `round trip ${dialect}: ${mb.toFixed(1)} MiB, ${backup.progress.filesDone} files; backup ${backupMs} ms (${(mb / (backupMs / 1000)).toFixed(1)} MiB/s incl. process start), restore ${restoreMs} ms`,
      );
      // An unchanged second backup reads nothing new.
      const second = json<{ bytesNew: number }>(await w.ok(['backup', 'docs', '--json']));
      assert.equal(second.bytesNew, 0);
      const points = json<unknown[]>(await w.ok(['point', 'list', 'docs', '--json']));
      assert.equal(points.length, 2);
      await w.ok(['check', 'alpha', '--read-data']);
    });

    test('with the catalog lost, the vault directory alone lists and restores its points', async () => {
      const fresh = { COFFER_HOME: join(w.root, 'new-home'), COFFER_DATABASE_URL: '' };
      const imported = json<{ items: { name: string; created: boolean }[]; pointsAdded: number }>(
        await w.ok(['vault', 'import', 'recovered', '--path', join(w.root, 'vault-alpha'), '--json'], fresh),
      );
      assert.deepEqual(
        imported.items.map((i) => [i.name, i.created]),
        [['docs', true]],
      );
      assert.equal(imported.pointsAdded, 2);
      const points = json<{ vaultName: string }[]>(await w.ok(['point', 'list', 'docs', '--json'], fresh));
      assert.equal(points.length, 2);
      const target = join(w.root, 'restored-from-storage');
      await w.ok(['restore', 'docs', '--target', target], fresh);
      await exec('diff', ['-r', '--no-dereference', join(w.root, 'docs'), target]);
      const again = await w.run(['vault', 'import', 'again', '--path', join(w.root, 'vault-alpha')], fresh);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /VaultAlreadyExists/);
    });

    test('a wrong password is VaultPasswordInvalid; a missing one is PasswordRequired', async () => {
      const wrong = await w.run(['check', 'alpha'], { COFFER_PASSWORD: 'not the password' });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /VaultPasswordInvalid/);
      const missing = await w.run(['check', 'alpha'], { COFFER_PASSWORD: '' });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /PasswordRequired/);
      const file = join(w.root, 'password.txt');
      await writeFile(file, `${w.env.COFFER_PASSWORD}\n`);
      await w.ok(['--password-file', file, 'check', 'alpha'], { COFFER_PASSWORD: '' });
    });

    test('refused, cancelled, retried, moved: the operator procedure works and the old vault blocks', async () => {
      const src = join(w.root, 'projects');
      await makeRandomTree(src, 16, 1024 * 1024);
      await w.ok(['item', 'add', 'projects', '--vault', 'alpha', '--path', src]);

      // A detached trigger queues a job; the second trigger is refused, exit 75, job named.
      const queued = json<{ id: string; state: string }>(
        await w.ok(['backup', 'projects', '--detach', '--json']),
      );
      assert.equal(queued.state, 'queued');
      const refused = await w.run(['backup', 'projects']);
      assert.equal(refused.code, 75);
      assert.match(refused.stderr, /UserErrorBackupOperationInProgress/);
      assert.match(refused.stderr, new RegExp(queued.id));
      assert.match(refused.stderr, /Recommended steps:/);
      assert.match(refused.stderr, /vault:\s+alpha/);

      // The jobs view shows it with filters; cancel it (queued: it never starts).
      const listed = json<{ id: string }[]>(
        await w.ok(['job', 'list', '--vault', 'alpha', '--item', 'projects', '--state', 'queued', '--json']),
      );
      assert.deepEqual(
        listed.map((j) => j.id),
        [queued.id],
      );
      const cancelled = json<{ state: string }>(await w.ok(['job', 'cancel', queued.id, '--json']));
      assert.equal(cancelled.state, 'cancelled');
      assert.equal(
        (await w.run(['job', 'cancel', queued.id])).code,
        1,
        'cancelling a finished job is refused',
      );

      // Retry runs it in the foreground to completion.
      const retried = json<{ state: string; trigger: string; recoveryPointId: string }>(
        await w.ok(['job', 'retry', queued.id, '--json']),
      );
      assert.equal(retried.state, 'completed');
      assert.equal(retried.trigger, `retry of ${queued.id}`);

      // A slow backup runs in alpha (new content, so it must read); the item moves to beta; a
      // trigger there names the alpha job.
      await makeRandomTree(src, 16, 1024 * 1024);
      const slow = startCoffer(['backup', 'projects', '--limit-read', '2M'], w.env);
      const slowDone = collect(slow);
      const item = await w.store.getItem('projects');
      const running = await waitFor(
        'the slow backup to run',
        async () => (await w.store.listJobs({ itemId: item.id, states: ['in_progress'] }))[0],
        20_000,
        50,
      );
      const move = await w.ok(['item', 'move', 'projects', '--vault', 'beta']);
      assert.match(move.stdout, new RegExp(`job ${running.id}.*still runs in vault 'alpha'`));
      const blocked = await w.run(['backup', 'projects', '--json']);
      assert.equal(blocked.code, 75);
      const problem = json<{
        blockingJob: { id: string; vaultName: string };
        blockedInOtherVault: boolean;
        detail: string;
      }>(blocked);
      assert.equal(problem.blockingJob.id, running.id);
      assert.equal(problem.blockingJob.vaultName, 'alpha');
      assert.equal(problem.blockedInOtherVault, true);
      assert.match(problem.detail, /moved/);

      // Cancel with --wait returns once the worker acknowledged; then the backup goes to beta.
      const waited = json<{ state: string }>(await w.ok(['job', 'cancel', running.id, '--wait', '--json']));
      assert.equal(waited.state, 'cancelled');
      assert.equal((await slowDone).code, 1);
      const inBeta = json<{ state: string; vault: { name: string } }>(
        await w.ok(['backup', 'projects', '--json']),
      );
      assert.equal(inBeta.state, 'completed');
      assert.equal(inBeta.vault.name, 'beta');

      // Points from both vaults are listed; the latest (beta) restores byte-identically.
      const points = json<{ vaultName: string }[]>(await w.ok(['point', 'list', 'projects', '--json']));
      assert.deepEqual(
        points.map((p) => p.vaultName),
        ['beta', 'alpha'],
      );
      const target = join(w.root, 'restored-projects');
      await w.ok(['restore', 'projects', '--target', target]);
      await exec('diff', ['-r', src, target]);

      // The timeline of the cancelled job tells the story.
      const shown = json<{ events: { state: string }[] }>(await w.ok(['job', 'show', running.id, '--json']));
      assert.deepEqual(
        shown.events.map((e) => e.state),
        ['queued', 'in_progress', 'cancelling', 'cancelled'],
      );
    });

    test('an idempotency key makes a timed-out trigger safe to repeat', async () => {
      const src = join(w.root, 'idem');
      await makeRandomTree(src, 2, 1024);
      await w.ok(['item', 'add', 'idem', '--vault', 'alpha', '--path', src]);
      const a = json<{ id: string }>(
        await w.ok(['backup', 'idem', '--detach', '--idempotency-key', 'nightly-42', '--json']),
      );
      const b = json<{ id: string; reused: boolean }>(
        await w.ok(['backup', 'idem', '--detach', '--idempotency-key', 'nightly-42', '--json']),
      );
      assert.equal(b.id, a.id);
      assert.equal(b.reused, true);
      // A worker drains the queue and runs it.
      await w.ok(['worker', '--drain']);
      assert.equal((await w.store.getJob(a.id)).state, 'completed');
    });

    test('a backup whose source is gone fails with SourceUnreadable and the CLI exits at once', async () => {
      const src = join(w.root, 'vanishing');
      await makeRandomTree(src, 1, 1024);
      await w.ok(['item', 'add', 'vanishing', '--vault', 'alpha', '--path', src]);
      await rm(src, { recursive: true });
      // The engine's first thread is started as the job begins; one that never got work once
      // kept this process alive after the job had failed.
      const started = performance.now();
      const r = await w.run(['backup', 'vanishing']);
      const ms = performance.now() - started;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /SourceUnreadable/);
      assert.ok(ms < 15_000, `exited after ${Math.round(ms)} ms`);
    });

    test('bad input gets catalog codes and exit codes, never a crash', async () => {
      const cases: [string[], number, RegExp][] = [
        [['backup', 'no-such-item'], 1, /ItemNotFound/],
        [['vault', 'create', 'bad name!', '--path', join(w.root, 'x')], 2, /InvalidRequest/],
        [['vault', 'create', 'alpha', '--path', join(w.root, 'y')], 1, /VaultAlreadyExists/],
        [
          ['vault', 'create', 'gamma', '--path', join(w.root, 'z'), '--compression', 'fastest'],
          2,
          /InvalidRequest[\s\S]*compression 'fastest' is not valid/,
        ],
        [
          ['item', 'add', 'ghost', '--vault', 'alpha', '--path', join(w.root, 'does-not-exist')],
          1,
          /SourceUnreadable/,
        ],
        [
          ['item', 'add', 'dup', '--vault', 'alpha', '--path', join(w.root, 'idem')],
          1,
          /ItemAlreadyProtected/,
        ],
        [['job', 'list', '--state', 'running'], 2, /InvalidRequest/],
        [['job', 'list', '--since', 'yesterday-ish'], 2, /InvalidRequest/],
        [['job', 'show', 'j_nope'], 1, /JobNotFound/],
        [['backup', 'idem', '--limit-read', 'fast'], 2, /InvalidRequest/],
        [['restore', 'idem', '--target', join(w.root, 't'), '--point', 'ffff'], 1, /PointNotFound/],
        [['explain', 'NoSuchCode'], 2, /InvalidRequest/],
        [['frobnicate'], 2, /unknown command/],
        [['backup'], 2, /missing required argument/],
      ];
      for (const [args, code, pattern] of cases) {
        const r = await w.run(args);
        assert.equal(r.code, code, `coffer ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
        assert.match(r.stderr, pattern, `coffer ${args.join(' ')}`);
        assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack traces');
      }
      const bad = await w.run(['--json', 'job', 'show', 'j_nope']);
      assert.equal(bad.code, 2, 'global flags are not --json');
      const article = await w.ok(['explain', 'UserErrorBackupOperationInProgress']);
      assert.match(article.stdout, /coffer job cancel/);
    });

    test('with the main thread taking a share of the engine’s work, the round trip is the same', async () => {
      const src = join(w.root, 'lane-src');
      // Large files (read in parts, their chunks encoded wherever is free), compressible and not,
      // and a directory of small ones (read in batches).
      await makeRandomTree(src, 3, 2 * 1024 * 1024);
      const lines = Array.from({ length: 200_000 }, (_, i) => `line ${i} of a compressible file\n`);
      await writeFile(join(src, 'text.log'), lines.join(''));
      await cp('/usr/share/doc/bash', join(src, 'bash-doc'), { recursive: true, verbatimSymlinks: true });
      const lane = { COFFER_MAIN_THREAD_WORK: 'on', COFFER_ENGINE_THREADS: '2' };
      // A vault of its own: the tests above count alpha's items.
      await w.ok(['vault', 'create', 'lanes', '--path', join(w.root, 'vault-lanes')]);
      await w.ok(['item', 'add', 'lane', '--vault', 'lanes', '--path', src]);
      const backup = json<{ state: string }>(await w.ok(['backup', 'lane', '--json'], lane));
      assert.equal(backup.state, 'completed');
      const target = join(w.root, 'restored-lane');
      await w.ok(['restore', 'lane', '--target', target], lane);
      assert.equal(await treeListing(target), await treeListing(src));
      const diff = await exec('diff', ['-r', '--no-dereference', src, target]).catch(
        (e: { stdout: string }) => e,
      );
      assert.equal((diff as { stdout: string }).stdout, '', 'restore differs from the source');
      // Read back with worker threads only, and checked with the lane: the vault is the same either way.
      await w.ok(['restore', 'lane', '--target', join(w.root, 'restored-lane-2')]);
      await w.ok(['check', 'lanes', '--read-data'], lane);
      // A bad value is a catalog error, not a crash.
      const bad = await w.run(['backup', 'lane'], { COFFER_MAIN_THREAD_WORK: 'sometimes' });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /InvalidRequest[\s\S]*COFFER_MAIN_THREAD_WORK must be on or off/);
    });
  });
}
