/**
 * Opening the embedded catalog while another connection holds the file: the first open of a
 * fresh catalog converts it to write-ahead logging, which needs the file to itself, and SQLite
 * reports "database is locked" for it at once instead of waiting (seen in CI: eight processes
 * migrating a fresh catalog together). The open must wait for the lock, not fail.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openCatalog } from '../../src/catalog/connect.js';

test('a fresh catalog held by another writer opens once the writer lets go, in WAL mode', async () => {
  const home = await mkdtemp(join(tmpdir(), 'coffer-connect-'));
  try {
    // Another process's first open, caught mid-write: a rollback-journal file with a write lock.
    const other = new BetterSqlite3(join(home, 'catalog.db'));
    other.exec('create table t (x integer)');
    other.exec('begin immediate');
    other.exec('insert into t values (1)');
    const heldFor = 400;
    const release = setTimeout(() => other.exec('commit'), heldFor);
    const started = Date.now();
    const catalog = await openCatalog({ home });
    const waited = Date.now() - started;
    clearTimeout(release);
    other.close();
    try {
      assert.ok(waited >= heldFor - 50, `the open waited for the writer (${waited} ms)`);
      const check = new BetterSqlite3(join(home, 'catalog.db'), { readonly: true });
      assert.equal(check.pragma('journal_mode', { simple: true }), 'wal');
      check.close();
    } finally {
      await catalog.close();
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
