import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Repository } from '../../src/engine/index.js';
import { backends, createTestStorage, type TestStorage } from '../support/backends.js';
import { copyRealDocs, diffTrees, newRepository, removeDir, tempDir } from './source-tree-fixture.js';

const CHILD = fileURLToPath(new URL('./backup-child.js', import.meta.url));

function runChild(
  args: string[],
  env: Record<string, string>,
): Promise<{ snapshotId: string; blobsNew: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as { snapshotId: string; blobsNew: number })
        : reject(new Error(`child exit ${code}: ${err}`)),
    );
  });
}

for (const kind of backends()) {
  describe(`two processes backing up into one repository at once (${kind} storage)`, () => {
    let work: string;
    let storage: TestStorage;

    before(async () => {
      work = await tempDir('concurrent');
      storage = await createTestStorage(kind);
    });

    after(async () => {
      await storage.cleanup();
      await removeDir(work);
    });

    it('both succeed and both snapshots restore', async () => {
      const location = storage.location('repo');
      await newRepository(storage.open(location), 'pw');
      const shared = randomBytes(512 * 1024);
      const sources = [join(work, 'src-a'), join(work, 'src-b')];
      for (const [i, src] of sources.entries()) {
        await mkdir(src);
        copyRealDocs(src, i === 0 ? ['git', 'apt'] : ['bash', 'dpkg']);
        // Identical content in both: each writer stores its own copy, and that must stay harmless.
        await writeFile(join(src, 'shared.bin'), shared);
        await writeFile(join(src, `own-${i}.bin`), randomBytes(300 * 1024));
      }
      const results = await Promise.all(sources.map((src) => runChild([location, 'pw', src], storage.env)));

      const repo = await Repository.open(storage.open(location), 'pw');
      const listed = await repo.listSnapshots();
      assert.deepEqual(listed.map((s) => s.id).sort(), results.map((r) => r.snapshotId).sort());
      for (const [i, r] of results.entries()) {
        const target = join(work, `restored-${i}`);
        await repo.restore({ snapshotId: r.snapshotId, target });
        assert.equal(diffTrees(sources[i]!, target), '');
      }
      const report = await repo.check({ readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.issues));
    });
  });
}
