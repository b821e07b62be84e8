/**
 * The CLI with a vault in a bucket of a loopback S3-compatible server (s3rver), configured only
 * through the usual AWS environment variables: create, protect, back up, restore byte-identical,
 * check --read-data, recover from the bucket alone, and a clear error for refused credentials.
 * The same tree also goes to a local vault, so the two throughputs can be compared.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { copyRealDocs } from '../engine/source-tree-fixture.js';
import { dialects } from '../support/catalogs.js';
import { json } from '../support/cli.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { createWorld, type World } from '../support/world.js';

const exec = promisify(execFile);
const BUCKET = 'coffer-cli';

for (const dialect of await dialects()) {
  describe(`CLI with an S3 vault (${dialect})`, () => {
    let s3: S3TestServer;
    let w: World;
    let src: string;
    const location = `s3://${BUCKET}/vaults/${dialect}/main`;

    before(async () => {
      s3 = await startS3Server([BUCKET]);
      w = await createWorld(dialect, s3.env);
      src = join(w.root, 'docs');
      await mkdir(src);
      copyRealDocs(src);
      // Incompressible and larger than a pack (16 MiB), so packs go up as multipart uploads.
      await writeFile(join(src, 'big.bin'), randomBytes(20 * 1024 * 1024));
    });
    after(async () => {
      await w.close();
      await s3.stop();
    });

    test('create, back up, restore byte-identical and check --read-data', async () => {
      const created = await w.ok(['vault', 'create', 'v', '--path', location]);
      assert.doesNotMatch(created.stderr, /Warning/);
      await w.ok(['item', 'add', 'docs', '--vault', 'v', '--path', src]);
      const t0 = performance.now();
      const backup = json<{ state: string; bytesScanned: number }>(await w.ok(['backup', 'docs', '--json']));
      const s3Sec = (performance.now() - t0) / 1000;
      assert.equal(backup.state, 'completed');
      assert.ok(
        (await s3.requests()).some(
          (r) => r.startsWith('PUT ') && r.includes('/data/') && r.includes('partNumber='),
        ),
        'packs were uploaded in parts',
      );

      const target = join(w.root, 'restored');
      const t1 = performance.now();
      await w.ok(['restore', 'docs', '--target', target]);
      const restoreSec = (performance.now() - t1) / 1000;
      const diff = await exec('diff', ['-r', '--no-dereference', src, target]).catch(
        (e: { stdout: string }) => e,
      );
      assert.equal((diff as { stdout: string }).stdout, '', 'restore differs from the source');
      assert.match((await w.ok(['check', 'v', '--read-data'])).stdout, /no errors were found/);

      // The same tree into a local vault of another catalog (one source is one item), for comparison.
      const lw = await createWorld('sqlite');
      let localSec: number;
      try {
        await lw.ok(['vault', 'create', 'local', '--path', join(lw.root, 'vault-local')]);
        await lw.ok(['item', 'add', 'docs', '--vault', 'local', '--path', src]);
        const t2 = performance.now();
        await lw.ok(['backup', 'docs', '--json']);
        localSec = (performance.now() - t2) / 1000;
      } finally {
        await lw.close();
      }
      const mib = backup.bytesScanned / 1024 / 1024;
      console.log(
        `s3 cli ${dialect}: ${mib.toFixed(1)} MiB; backup to loopback S3 ${s3Sec.toFixed(2)} s (${(mib / s3Sec).toFixed(1)} MiB/s), to local ${localSec.toFixed(2)} s (${(mib / localSec).toFixed(1)} MiB/s), restore from S3 ${restoreSec.toFixed(2)} s (incl. process start)`,
      );
    });

    test('with the catalog lost, the bucket alone lists and restores the points', async () => {
      const fresh = { COFFER_HOME: join(w.root, 'new-home'), COFFER_DATABASE_URL: '' };
      const imported = json<{ pointsAdded: number }>(
        await w.ok(['vault', 'import', 'recovered', '--path', location, '--json'], fresh),
      );
      assert.equal(imported.pointsAdded, 1);
      const target = join(w.root, 'restored-from-bucket');
      await w.ok(['restore', 'docs', '--target', target], fresh);
      await exec('diff', ['-r', '--no-dereference', src, target]);
    });

    test('refused credentials and a missing bucket fail with StorageUnavailable', async () => {
      const refused = await w.run(['vault', 'create', 'denied', '--path', `s3://${BUCKET}/vaults/denied`], {
        AWS_ACCESS_KEY_ID: 'NOT-THE-KEY',
      });
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /StorageUnavailable/);
      const missing = await w.run(['vault', 'create', 'nobucket', '--path', 's3://no-such-bucket/v']);
      assert.equal(missing.code, 1, missing.stderr);
      assert.match(missing.stderr, /StorageUnavailable/);
      assert.match(missing.stderr, /does not exist/);
    });
  });
}
