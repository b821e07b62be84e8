/**
 * The master index (src/engine/index/master-index.ts): binary index files (format 2) and JSON
 * ones (format 1) load into the same table, a blob in several packs resolves to a live copy in
 * either order, bad files are RepositoryCorrupt and add nothing, and the known-blob filter made
 * from the table's bytes is the one made from the hex ids.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { sealBinary, sealJson } from '../../src/engine/crypto/sealed-json.js';
import {
  encodeIndexFile,
  type IndexedPack,
  loadMasterIndex,
  MasterIndex,
  readIndexFile,
  writeIndexFile,
} from '../../src/engine/index/master-index.js';
import { KnownBlobFilter } from '../../src/engine/parallel/known-filter.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import { removeDir, tempDir } from './source-tree-fixture.js';

const hex = (bytes = 32) => randomBytes(bytes).toString('hex');
const KEY = randomBytes(32);

/** `packs` packs of `blobs` random blobs each, with every field varied. */
function randomPacks(packs: number, blobs: number): IndexedPack[] {
  return Array.from({ length: packs }, (_, p) => ({
    id: hex(),
    size: p === 0 ? 2 ** 40 + 12345 : 16 * 1024 * 1024 + p,
    blobs: Array.from({ length: blobs }, (_, b) => ({
      id: createHash('sha256').update(`${p}/${b}/${Math.random()}`).digest('hex'),
      type: b % 3 === 0 ? ('tree' as const) : ('data' as const),
      offset: b * 1000,
      length: 1000 + b,
      uncompressedLength: 4000 + b,
      compressed: b % 2 === 0,
    })),
  }));
}

function assertSame(index: MasterIndex, packs: IndexedPack[]): void {
  assert.equal(
    index.blobCount,
    packs.reduce((n, p) => n + p.blobs.length, 0),
  );
  for (const p of packs) {
    assert.equal(index.packs.get(p.id), p.size);
    for (const b of p.blobs) assert.deepEqual(index.get(b.id), { ...b, packId: p.id });
  }
}

const corrupt = (err: unknown) => isCofferError(err, 'RepositoryCorrupt');

describe('master index', () => {
  it('a binary index file loads into the same entries as its packs added one by one', () => {
    const packs = randomPacks(5, 300);
    const fromObjects = new MasterIndex();
    for (const p of packs) fromObjects.addPack(p);
    const fromBytes = new MasterIndex();
    fromBytes.addBinary(encodeIndexFile(packs), 'index/test');
    assertSame(fromObjects, packs);
    assertSame(fromBytes, packs);
    assert.equal(fromBytes.get(hex()), undefined);
    assert.equal(fromBytes.has('not hex at all, but sixty-four characters long, more or less ok?'), false);
    assert.equal(fromBytes.has(packs[0]!.blobs[0]!.id.toUpperCase().slice(1)), false);
  });

  it('grows past its first tables: 50,000 blobs', () => {
    const packs = randomPacks(50, 1000);
    const index = new MasterIndex();
    index.addBinary(encodeIndexFile(packs), 'index/big');
    assertSame(index, packs);
  });

  it('a blob in a condemned and a live pack resolves to the live copy, whichever comes first', () => {
    const [a, b] = randomPacks(2, 4);
    const shared = { ...a!.blobs[1]!, offset: 77 };
    b!.blobs.push(shared);
    for (const order of [
      [a!, b!],
      [b!, a!],
    ]) {
      const index = new MasterIndex(new Set([a!.id]));
      for (const p of order) index.addBinary(encodeIndexFile([p]), 'index/x');
      const e = index.get(shared.id)!;
      assert.equal(e.packId, b!.id);
      assert.equal(e.offset, 77);
      assert.equal(index.hasLive(a!.blobs[0]!.id), false, 'only in the condemned pack');
      assert.equal(index.has(a!.blobs[0]!.id), true);
      assert.equal(index.hasLive(shared.id), true);
      assert.deepEqual(
        [...index.liveIds()].sort(),
        [...b!.blobs.map((x) => x.id)].sort(),
        'live ids are those of the live pack',
      );
    }
    // Two live copies: the first one stays.
    const index = new MasterIndex();
    index.addPack(a!);
    index.addPack(b!);
    assert.equal(index.get(shared.id)!.packId, a!.id);
  });

  it('a damaged binary index is RepositoryCorrupt and adds nothing', () => {
    const good = encodeIndexFile(randomPacks(2, 10));
    const badType = Buffer.from(good);
    badType[5 + 44] = 7;
    const cases = [
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.from([0])]),
      badType,
      Buffer.from([2, 255, 255, 255, 255]),
      Buffer.from([1, 0, 0, 0, 0]),
      Buffer.alloc(0),
    ];
    for (const bytes of cases) {
      const index = new MasterIndex();
      assert.throws(() => index.addBinary(bytes, 'index/bad'), corrupt);
      assert.equal(index.blobCount, 0);
      assert.equal(index.packs.size, 0);
    }
  });

  it('loads JSON (format 1) and binary (format 2) files of one vault together; prune reads both', async () => {
    const dir = await tempDir('master-index');
    try {
      const backend = new LocalBackend(dir);
      const [older, newer] = [randomPacks(2, 20), randomPacks(3, 20)];
      await backend.save(`index/${hex()}`, sealJson(KEY, { version: 1, packs: older }, true));
      const newName = await writeIndexFile(backend, KEY, newer);
      const index = await loadMasterIndex(backend, KEY);
      assertSame(index, [...older, ...newer]);
      assert.deepEqual((await readIndexFile(backend, KEY, newName)).packs, newer);
      const names = await readdir(join(dir, 'index'));
      assert.equal(names.length, 2);

      // A sealed binary file that is not an index is refused like a damaged JSON one.
      await backend.save(`index/${hex()}`, sealBinary(KEY, Buffer.from('no index here')));
      await assert.rejects(loadMasterIndex(backend, KEY), corrupt);
    } finally {
      await removeDir(dir);
    }
  });

  it('the known-blob filter made from the index bytes equals the one made from hex ids', () => {
    const packs = randomPacks(3, 500);
    const index = new MasterIndex(new Set([packs[1]!.id]));
    index.addBinary(encodeIndexFile(packs), 'index/f');
    const fromIds = KnownBlobFilter.build(index.liveIds(), index.blobCount).table;
    const fromIndex = KnownBlobFilter.fromIndex(index).table;
    assert.deepEqual(new Uint8Array(fromIndex), new Uint8Array(fromIds));
  });
});
