import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Repository } from '../../src/engine/index.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import { newRepository, removeDir, tempDir, TEST_SCRYPT } from './source-tree-fixture.js';

describe('repository init and open', () => {
  let work: string;

  before(async () => {
    work = await tempDir('open');
  });

  after(() => removeDir(work));

  it('opens with the right password only', async () => {
    const dir = join(work, 'repo');
    const created = await newRepository(dir, 'right');
    const opened = await Repository.open(new LocalBackend(dir), 'right');
    assert.equal(opened.id, created.id);
    await assert.rejects(Repository.open(new LocalBackend(dir), 'wrong'), (e) =>
      isCofferError(e, 'VaultPasswordInvalid'),
    );
    assert.deepEqual((await readdir(dir)).sort(), ['config', 'keys', 'tmp']);
  });

  it('refuses to initialise twice and to open an empty location', async () => {
    const dir = join(work, 'repo');
    await assert.rejects(Repository.init(new LocalBackend(dir), 'x', { scrypt: TEST_SCRYPT }), (e) =>
      isCofferError(e, 'VaultAlreadyExists'),
    );
    await assert.rejects(Repository.open(new LocalBackend(join(work, 'nothing')), 'x'), (e) =>
      isCofferError(e, 'VaultNotFound'),
    );
  });

  it('rejects invalid parameters', async () => {
    await assert.rejects(
      Repository.init(new LocalBackend(join(work, 'bad')), 'x', { scrypt: { N: 1000, r: 8, p: 1 } }),
      (e) => isCofferError(e, 'InvalidRequest'),
    );
    await assert.rejects(
      Repository.init(new LocalBackend(join(work, 'bad2')), 'x', {
        scrypt: TEST_SCRYPT,
        chunker: { minSize: 100, avgSize: 50, maxSize: 200 },
      }),
      (e) => isCofferError(e, 'InvalidRequest'),
    );
  });

  it('derives keys with the default scrypt cost in reasonable time', async () => {
    const started = performance.now();
    const dir = join(work, 'default-cost');
    await Repository.init(new LocalBackend(dir), 'pw');
    await Repository.open(new LocalBackend(dir), 'pw');
    assert.ok(performance.now() - started < 5000);
  });
});
