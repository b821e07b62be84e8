/**
 * Prepared queries (src/catalog/prepared.ts) must answer exactly like the Kysely query they
 * were compiled from, for any arguments, on both dialects, and must refuse a builder that uses
 * an argument to pick the query's shape (one compiled form could not fit every call).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openCatalog, type Catalog } from '../../src/catalog/connect.js';
import { migrate } from '../../src/catalog/migrations.js';
import { prepare, prepareInsert } from '../../src/catalog/prepared.js';
import { createTestCatalog, dialects, type TestCatalog } from '../support/catalogs.js';

for (const dialect of await dialects()) {
  describe(`prepared queries (${dialect})`, () => {
    let tc: TestCatalog;
    let catalog: Catalog;

    before(async () => {
      tc = await createTestCatalog(dialect);
      catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
      await migrate(catalog);
    });
    after(async () => {
      await catalog.close();
      await tc.cleanup();
    });

    test('inserts and selects with fresh arguments on every call', async () => {
      const insert = prepareInsert('vaults', [
        'id',
        'name',
        'location',
        'repository_id',
        'created_at',
      ] as const);
      for (let i = 0; i < 3; i++) {
        const [row] = await insert.execute(catalog.db, {
          id: `v${i}`,
          name: `vault-${i}`,
          location: `/srv/${i}`,
          repository_id: `r${i}`,
          created_at: 1000 + i,
        });
        assert.equal(row?.name, `vault-${i}`);
      }
      const byName = prepare(2, (db, name: string, after: number) =>
        db
          .selectFrom('vaults')
          .select(['id', 'created_at'])
          .where('name', '=', name)
          .where('created_at', '>', after),
      );
      assert.deepEqual(await byName.execute(catalog.db, 'vault-2', 1000), [{ id: 'v2', created_at: 1002 }]);
      assert.deepEqual(await byName.execute(catalog.db, 'vault-1', 1000), [{ id: 'v1', created_at: 1001 }]);
      assert.deepEqual(await byName.execute(catalog.db, 'vault-0', 1000), []);
      // A value that looks like SQL is only ever a parameter.
      assert.deepEqual(await byName.execute(catalog.db, "vault-1' or '1'='1", 0), []);
    });

    test('refuses a builder that does not use an argument as a value', async () => {
      const shaped = prepare(2, (db, name: string, _unused: number) =>
        db.selectFrom('vaults').select('id').where('name', '=', name),
      );
      await assert.rejects(shaped.execute(catalog.db, 'vault-0', 1), /uses 1 of its 2 arguments/);
    });
  });
}
