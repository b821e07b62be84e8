import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Repository } from '../../src/engine/index.js';
import {
  compressionLevel,
  DEFAULT_COMPRESSION_LEVEL,
  newConfig,
  parseCompressionLevel,
  parseConfig,
} from '../../src/engine/repository/repository-config.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import {
  copyRealDocs,
  diffTrees,
  removeDir,
  tempDir,
  TEST_CHUNKER,
  TEST_PACK_SIZE,
  TEST_SCRYPT,
} from './source-tree-fixture.js';

describe('compression setting', () => {
  it('accepts names and levels, and refuses anything else naming the field', () => {
    assert.equal(parseCompressionLevel('off'), 0);
    assert.equal(parseCompressionLevel('fast'), 1);
    assert.equal(parseCompressionLevel('Default'), DEFAULT_COMPRESSION_LEVEL);
    assert.equal(parseCompressionLevel('max'), 19);
    assert.equal(parseCompressionLevel('7'), 7);
    assert.equal(parseCompressionLevel(0), 0);
    for (const bad of ['20', '-1', '1.5', 'best', '', '3x', 99]) {
      assert.throws(
        () => parseCompressionLevel(bad),
        (e) => isCofferError(e, 'InvalidRequest') && e.context.field === 'compression',
        String(bad),
      );
    }
  });

  it('is kept in the repository config; a config without it means the default level', () => {
    const fast = newConfig(undefined, undefined, 1);
    assert.equal(compressionLevel(parseConfig(JSON.parse(JSON.stringify(fast)))), 1);
    const { compression: _dropped, ...older } = newConfig();
    assert.equal(compressionLevel(parseConfig(older)), DEFAULT_COMPRESSION_LEVEL);
    assert.throws(
      () => parseConfig({ ...older, compression: { level: 42 } }),
      (e) => isCofferError(e, 'RepositoryCorrupt'),
    );
  });
});

describe('backups at each compression setting', () => {
  let work: string;
  let source: string;
  const stored = new Map<string, number>();

  before(async () => {
    work = await tempDir('compression');
    source = join(work, 'src');
    await mkdir(source, { recursive: true });
    // Real text (a few /usr/share/doc packages; their many gzip files keep the ratio modest) and random bytes.
    copyRealDocs(source);
    await writeFile(join(source, 'small.txt'), 'hello '.repeat(500));
    await writeFile(join(source, 'random.bin'), randomBytes(300 * 1024));
  });

  after(() => removeDir(work));

  for (const setting of ['off', 'fast', 'default', 'max'] as const) {
    it(`stores and restores byte for byte with compression ${setting}`, async () => {
      const location = join(work, `vault-${setting}`);
      const repo = await Repository.init(new LocalBackend(location), 'pw', {
        scrypt: TEST_SCRYPT,
        chunker: TEST_CHUNKER,
        packSize: TEST_PACK_SIZE,
        compression: parseCompressionLevel(setting),
      });
      const result = await repo.backup({ sourcePath: source });
      stored.set(setting, result.stats.bytesStored);
      // Reopened from storage alone, the vault still knows its level and reads everything back.
      const reopened = await Repository.open(new LocalBackend(location), 'pw');
      const target = join(work, `restored-${setting}`);
      await reopened.restore({ snapshotId: result.snapshotId, target });
      assert.equal(diffTrees(source, target), '');
      const report = await reopened.check({ readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.issues));
    });
  }

  it('stores less the higher the level, and off stores every byte', () => {
    const off = stored.get('off')!;
    const fast = stored.get('fast')!;
    const dflt = stored.get('default')!;
    const max = stored.get('max')!;
    assert.ok(off > fast * 1.2, `off ${off} vs fast ${fast}`);
    // Chunk boundaries differ per vault (each has its own gear table), hence the 1 % slack.
    assert.ok(dflt <= fast * 1.01, `default ${dflt} vs fast ${fast}`);
    assert.ok(max < dflt, `max ${max} vs default ${dflt}`);
  });
});
