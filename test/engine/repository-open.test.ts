import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Repository } from '../../src/engine/index.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { backends, createTestStorage, type TestStorage } from '../support/backends.js';
import { newRepository, TEST_SCRYPT } from './source-tree-fixture.js';

for (const kind of backends()) {
  describe(`repository init and open (${kind} storage)`, () => {
    let storage: TestStorage;
    let repoLocation: string;

    before(async () => {
      storage = await createTestStorage(kind);
      repoLocation = storage.location('repo');
    });

    after(() => storage.cleanup());

    it('opens with the right password only', async () => {
      const created = await newRepository(storage.open(repoLocation), 'right');
      const opened = await Repository.open(storage.open(repoLocation), 'right');
      assert.equal(opened.id, created.id);
      await assert.rejects(Repository.open(storage.open(repoLocation), 'wrong'), (e) =>
        isCofferError(e, 'VaultPasswordInvalid'),
      );
      const names = await storage.open(repoLocation).list('');
      assert.deepEqual([...new Set(names.map((n) => n.split('/')[0]))], ['config', 'keys']);
    });

    it('refuses to initialise twice and to open an empty location', async () => {
      await assert.rejects(Repository.init(storage.open(repoLocation), 'x', { scrypt: TEST_SCRYPT }), (e) =>
        isCofferError(e, 'VaultAlreadyExists'),
      );
      await assert.rejects(Repository.open(storage.open(storage.location('nothing')), 'x'), (e) =>
        isCofferError(e, 'VaultNotFound'),
      );
    });

    it('rejects invalid parameters', async () => {
      await assert.rejects(
        Repository.init(storage.open(storage.location('bad')), 'x', { scrypt: { N: 1000, r: 8, p: 1 } }),
        (e) => isCofferError(e, 'InvalidRequest'),
      );
      await assert.rejects(
        Repository.init(storage.open(storage.location('bad2')), 'x', {
          scrypt: TEST_SCRYPT,
          chunker: { minSize: 100, avgSize: 50, maxSize: 200 },
        }),
        (e) => isCofferError(e, 'InvalidRequest'),
      );
    });

    it('derives keys with the default scrypt cost in reasonable time', async () => {
      const started = performance.now();
      const location = storage.location('default-cost');
      await Repository.init(storage.open(location), 'pw');
      await Repository.open(storage.open(location), 'pw');
      assert.ok(performance.now() - started < 5000);
    });
  });
}
