/**
 * Issue 7, fault tests 4 and 5, through the real CLI on every catalog:
 *  - storage full: the vault on a small tmpfs the test mounts; a backup larger than the space
 *    fails `StorageFull`, the vault stays consistent, and after space is added a backup succeeds;
 *  - a flipped byte in a pack: `check --read-data` names the damaged blob and the file it
 *    affects; restore writes every unaffected file and fails the affected one with
 *    `RepositoryCorrupt`, by name.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Repository } from '../../src/engine/index.js';
import { packPath } from '../../src/engine/pack/pack-writer.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import type { CheckReport } from '../../src/engine/index.js';
import { openBackend } from '../../src/storage/open-backend.js';
import { dialects } from '../support/catalogs.js';
import { json } from '../support/cli.js';
import { manifest, manifestDiff } from '../support/trees.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';

const run = promisify(execFile);

for (const dialect of await dialects()) {
  describe(`storage faults (${dialect})`, () => {
    let w: World;
    let mounted: string | null = null;

    before(async () => {
      w = await createWorld(dialect);
    });
    after(async () => {
      if (mounted) await run('umount', [mounted]).catch(() => run('umount', ['-l', mounted!]));
      await w.close();
    });

    test('storage full: StorageFull, the vault stays consistent, a backup succeeds once there is space', async (t) => {
      const mnt = join(w.root, 'small');
      await mkdir(mnt);
      try {
        await run('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
        mounted = mnt;
      } catch (err) {
        return t.skip(
          `cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${(err as Error).message.trim()}`,
        );
      }
      const vaultDir = join(mnt, 'vault');
      await w.ok(['vault', 'create', 'small', '--path', vaultDir]);
      const smallDir = join(w.root, 'fits');
      await makeRandomTree(smallDir, 4, 256 * 1024);
      await w.ok(['item', 'add', 'fits', '--vault', 'small', '--path', smallDir]);
      await w.ok(['backup', 'fits']);
      const bigDir = join(w.root, 'too-big');
      await makeRandomTree(bigDir, 12, 1024 * 1024);
      await w.ok(['item', 'add', 'too-big', '--vault', 'small', '--path', bigDir]);

      const r = await w.run(['backup', 'too-big']);
      assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /StorageFull/);
      const item = await w.store.getItem('too-big');
      const [job] = await w.store.listJobs({ itemId: item.id });
      assert.equal(job!.state, 'failed');
      assert.equal(job!.errorCode, 'StorageFull', job!.errorMessage ?? '');
      assert.match(job!.errorMessage ?? '', /no space left/);
      assert.deepEqual(await w.store.listPoints(item.id), []);
      assert.deepEqual(
        await readdir(join(vaultDir, 'pending')).catch(() => []),
        [],
        'no pending snapshot left',
      );

      // Consistent: check reads every blob; the earlier point restores byte-identically.
      const check = await w.run(['check', 'small', '--read-data']);
      assert.equal(check.code, 0, `${check.stdout}\n${check.stderr}`);
      const target = join(w.root, 'fits-restored');
      await w.ok(['restore', 'fits', '--target', target]);
      assert.deepEqual(manifestDiff(await manifest(smallDir), await manifest(target)), []);

      // The operator adds space; the same backup now succeeds and restores.
      await run('mount', ['-o', 'remount,size=40m', mnt]);
      const again = await w.run(['backup', 'too-big']);
      assert.equal(again.code, 0, again.stderr);
      await w.ok(['check', 'small', '--read-data']);
      const bigTarget = join(w.root, 'big-restored');
      await w.ok(['restore', 'too-big', '--target', bigTarget]);
      assert.deepEqual(manifestDiff(await manifest(bigDir), await manifest(bigTarget)), []);
    });

    test('flipped byte in a pack: check names the blob and the file; restore delivers the rest and fails that file', async () => {
      const vaultDir = join(w.root, 'vault-flip');
      await w.ok(['vault', 'create', 'flip', '--path', vaultDir]);
      const src = join(w.root, 'docs');
      await mkdir(join(src, 'sub'), { recursive: true });
      for (const name of ['a.bin', 'b.bin', 'c.bin', 'sub/d.bin'])
        await writeFile(join(src, name), randomBytes(200 * 1024));
      await w.ok(['item', 'add', 'docs', '--vault', 'flip', '--path', src]);
      await w.ok(['backup', 'docs']);
      const [point] = await w.store.listPoints((await w.store.getItem('docs')).id);

      // Find where b.bin's first chunk lives, and flip one byte of it inside its pack.
      const repo = await Repository.open(openBackend(vaultDir), w.env.COFFER_PASSWORD!);
      const ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
      const index = await ctx.loadIndex();
      const root = await ctx.loadTree(index, (await repo.loadSnapshot(point!.id)).rootTreeId);
      const victim = root.find((n) => n.name === 'b.bin')!.content![0]!;
      const entry = index.get(victim)!;
      const fh = await open(join(vaultDir, packPath(entry.packId)), 'r+');
      const one = Buffer.alloc(1);
      await fh.read(one, 0, 1, entry.offset + Math.floor(entry.length / 2));
      one[0] = one[0]! ^ 0x10;
      await fh.write(one, 0, 1, entry.offset + Math.floor(entry.length / 2));
      await fh.close();

      const check = await w.run(['check', 'flip', '--read-data']);
      assert.equal(check.code, 1);
      assert.match(check.stdout, new RegExp(`error: blob ${victim}`));
      assert.match(
        check.stdout,
        new RegExp(
          `error: /b\\.bin in snapshot ${point!.id} of item 'docs' needs damaged data \\(blob ${victim}\\)`,
        ),
      );
      for (const other of ['a.bin', 'c.bin', 'd.bin'])
        assert.doesNotMatch(check.stdout, new RegExp(`/${other.replace('.', '\\.')}`));
      const report = json<{ report: CheckReport }>(
        await w.run(['check', 'flip', '--read-data', '--json']),
      ).report;
      assert.deepEqual(
        report.issues.filter((i) => i.kind === 'blob-damaged').map((i) => i.ids.blob),
        [victim],
      );
      assert.deepEqual(
        report.issues
          .filter((i) => i.kind === 'file-damaged')
          .map((i) => [i.ids.snapshot, i.ids.path, i.ids.blobs]),
        [[point!.id, '/b.bin', [victim]]],
      );

      // Restore: every unaffected file arrives intact; b.bin fails by name and is not left behind.
      const target = join(w.root, 'docs-restored');
      const r = await w.run(['restore', 'docs', '--target', target]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /RepositoryCorrupt/);
      assert.match(
        r.stderr,
        /1 of 4 file\(s\) were not restored because their data in the vault is damaged: b\.bin/,
      );
      assert.ok(r.stderr.includes(victim), 'the report names the damaged blob');
      const expected = await manifest(src);
      expected.delete('b.bin');
      assert.deepEqual(manifestDiff(expected, await manifest(target)), []);
      const [restoreJob] = await w.store.listJobs({ operations: ['restore'], itemId: point!.itemId });
      assert.equal(restoreJob!.state, 'failed');
      assert.equal(restoreJob!.errorCode, 'RepositoryCorrupt');
      assert.match(restoreJob!.errorMessage ?? '', /b\.bin/);
      // A single unaffected file restores cleanly.
      const single = join(w.root, 'docs-a');
      await w.ok(['restore', 'docs', '--target', single, '--path', 'sub/d.bin']);
      assert.deepEqual([...(await manifest(single)).values()], [expected.get('sub/d.bin')]);
    });
  });
}
