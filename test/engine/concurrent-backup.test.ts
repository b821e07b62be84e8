import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Repository } from '../../src/engine/index.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import { copyRealDocs, diffTrees, newRepository, removeDir, tempDir } from './source-tree-fixture.js';

const CHILD = fileURLToPath(new URL('./backup-child.js', import.meta.url));

function runChild(args: string[]): Promise<{ snapshotId: string; blobsNew: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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

describe('two processes backing up into one repository at once', () => {
  let work: string;

  before(async () => {
    work = await tempDir('concurrent');
  });

  after(() => removeDir(work));

  it('both succeed and both snapshots restore', async () => {
    const repoDir = join(work, 'repo');
    await newRepository(repoDir, 'pw');
    const shared = randomBytes(512 * 1024);
    const sources = [join(work, 'src-a'), join(work, 'src-b')];
    for (const [i, src] of sources.entries()) {
      await mkdir(src);
      copyRealDocs(src, i === 0 ? ['git', 'apt'] : ['bash', 'dpkg']);
      // Identical content in both: each writer stores its own copy, and that must stay harmless.
      await writeFile(join(src, 'shared.bin'), shared);
      await writeFile(join(src, `own-${i}.bin`), randomBytes(300 * 1024));
    }
    const results = await Promise.all(sources.map((src) => runChild([repoDir, 'pw', src])));

    const repo = await Repository.open(new LocalBackend(repoDir), 'pw');
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
