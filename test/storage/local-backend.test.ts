import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { LocalBackend, mapStorageError } from '../../src/storage/local/local-backend.js';
import { openBackend } from '../../src/storage/open-backend.js';
import { S3Backend } from '../../src/storage/s3/s3-backend.js';

describe('LocalBackend', () => {
  let dir: string;
  let backend: LocalBackend;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-local-'));
    backend = new LocalBackend(dir);
  });

  after(() => rm(dir, { recursive: true, force: true }));

  it('saves, loads whole and by range, stats, lists and removes', async () => {
    await backend.save('data/ab/abcdef', Buffer.from('0123456789'));
    await backend.save('index/one', Buffer.from('x'));
    assert.equal((await backend.load('data/ab/abcdef')).toString(), '0123456789');
    assert.equal((await backend.load('data/ab/abcdef', { offset: 3, length: 4 })).toString(), '3456');
    assert.deepEqual(await backend.stat('data/ab/abcdef'), { size: 10 });
    assert.equal(await backend.stat('data/ab/missing'), null);
    assert.equal(await backend.stat('data/ab'), null);
    assert.deepEqual(await backend.list('data'), ['ab/abcdef']);
    assert.deepEqual(await backend.list(''), ['data/ab/abcdef', 'index/one']);
    assert.deepEqual(await backend.list('nothing-here'), []);
    await backend.save('index/one', Buffer.from('overwritten'));
    assert.equal((await backend.load('index/one')).toString(), 'overwritten');
    await backend.remove('index/one');
    await backend.remove('index/one');
    assert.equal(await backend.stat('index/one'), null);
  });

  it('reads a range into a buffer it is given when that is large enough', async () => {
    await backend.save('data/cd/cdef', Buffer.from('abcdefghij'));
    const into = Buffer.alloc(6, '.');
    const got = await backend.load('data/cd/cdef', { offset: 2, length: 5 }, into);
    assert.equal(got.toString(), 'cdefg');
    assert.equal(got.buffer, into.buffer, 'a view of the given buffer');
    assert.equal(into.toString(), 'cdefg.');
    const small = Buffer.alloc(3, '.');
    const fresh = await backend.load('data/cd/cdef', { offset: 2, length: 5 }, small);
    assert.equal(fresh.toString(), 'cdefg');
    assert.notEqual(fresh.buffer, small.buffer, 'a buffer too small is left alone');
    assert.equal(small.toString(), '...');
    const big = Buffer.alloc(64);
    const whole = await backend.load('data/cd/cdef', undefined, big);
    assert.equal(whole.toString(), 'abcdefghij');
    assert.notEqual(whole.buffer, big.buffer, 'a whole object never goes into the buffer');
  });

  it('leaves no temporary files behind and ignores stale ones', async () => {
    assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    await writeFile(join(dir, 'tmp', 'stale-from-a-killed-process.tmp'), 'half a pack');
    assert.ok(!(await backend.list('')).some((p) => p.startsWith('tmp')));
    await backend.save('config', Buffer.from('c'));
    assert.ok(!(await backend.list('')).some((p) => p.startsWith('tmp')));
  });

  it('reports missing objects and short ranges as corruption, bad paths as invalid', async () => {
    await assert.rejects(backend.load('keys/none'), (e) => isCofferError(e, 'RepositoryCorrupt'));
    await backend.save('short', Buffer.from('abc'));
    await assert.rejects(backend.load('short', { offset: 1, length: 10 }), (e) =>
      isCofferError(e, 'RepositoryCorrupt'),
    );
    await assert.rejects(backend.save('../escape', Buffer.from('x')), (e) =>
      isCofferError(e, 'InvalidRequest'),
    );
    await assert.rejects(backend.load('/etc/passwd'), (e) => isCofferError(e, 'InvalidRequest'));
  });

  it('maps ENOSPC and EDQUOT to StorageFull', () => {
    for (const code of ['ENOSPC', 'EDQUOT']) {
      const err = Object.assign(new Error(code), { code });
      assert.ok(isCofferError(mapStorageError(err, '/x', 'data/p'), 'StorageFull'));
    }
    const other = Object.assign(new Error('EIO'), { code: 'EIO' });
    assert.equal(mapStorageError(other, '/x', 'data/p'), other);
  });

  it('throws StorageFull when a real filesystem fills up', async (t) => {
    const mnt = join(dir, 'small-fs');
    await mkdir(mnt);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]).status !== 0) {
      t.skip('needs permission to mount a small tmpfs');
      return;
    }
    try {
      const full = new LocalBackend(mnt);
      await assert.rejects(full.save('data/big', Buffer.alloc(1024 * 1024)), (e) =>
        isCofferError(e, 'StorageFull'),
      );
      // The failed write is cleaned up, so the space is free again and nothing half-written is visible.
      assert.deepEqual(await full.list(''), []);
      assert.deepEqual(await readdir(join(mnt, 'tmp')), []);
      await full.save('small', Buffer.alloc(1024));
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('openBackend', () => {
  it('opens local paths and s3:// locations, and refuses other schemes', () => {
    assert.ok(openBackend('/var/backups/vault') instanceof LocalBackend);
    assert.equal(openBackend('file:///var/backups/v%20x').location, '/var/backups/v x');
    assert.ok(openBackend('s3://bucket/prefix') instanceof S3Backend);
    assert.throws(
      () => openBackend('ftp://host/x'),
      (e) => isCofferError(e, 'InvalidRequest'),
    );
  });
});
