import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, symlink, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Repository } from '../../src/engine/index.js';
import { writeIndexFile } from '../../src/engine/index/master-index.js';
import { blobId } from '../../src/engine/pack/blob-codec.js';
import { BlobSaver } from '../../src/engine/repository/blob-saver.js';
import type { RepositoryContext } from '../../src/engine/repository/repository-context.js';
import { newSnapshotId, saveSnapshot } from '../../src/engine/snapshot/snapshot.js';
import { encodeTree, type TreeNode } from '../../src/engine/tree/tree.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { backends, createTestStorage, type TestStorage } from '../support/backends.js';
import { newRepository, removeDir, tempDir } from './source-tree-fixture.js';

const EVIL = Buffer.from('evil payload\n');

/** Writes trees, blobs, an index and a committed snapshot exactly as given, bypassing the archiver. */
class SnapshotForger {
  private readonly saver: BlobSaver;
  readonly dataId = blobId(EVIL);

  constructor(
    private readonly ctx: RepositoryContext,
    index: Awaited<ReturnType<RepositoryContext['loadIndex']>>,
  ) {
    this.saver = new BlobSaver(ctx, index);
  }

  file(name: string): TreeNode {
    return { ...base(name), type: 'file', size: EVIL.length, content: [this.dataId] };
  }

  symlink(name: string, target: string): TreeNode {
    return { ...base(name), type: 'symlink', linkTarget: target };
  }

  async dir(name: string, children: TreeNode[]): Promise<TreeNode> {
    return { ...base(name), type: 'dir', mode: 0o755, subtree: await this.tree(children) };
  }

  async tree(nodes: TreeNode[]): Promise<string> {
    const bytes = encodeTree(nodes);
    const id = blobId(bytes);
    await this.saver.save('tree', bytes, id, false);
    return id;
  }

  async snapshot(root: TreeNode[]): Promise<string> {
    await this.saver.save('data', EVIL, this.dataId, false);
    const rootTreeId = await this.tree(root);
    await this.saver.flush();
    await writeIndexFile(this.ctx.backend, this.ctx.key, this.saver.stored.splice(0));
    const id = newSnapshotId();
    await saveSnapshot(this.ctx.backend, this.ctx.key, 'committed', id, {
      version: 1,
      time: new Date().toISOString(),
      hostname: 'attacker',
      sourcePath: '/',
      rootTreeId,
      parentSnapshotId: null,
      tags: {},
      summary: {
        filesNew: 0,
        filesChanged: 0,
        filesUnmodified: 0,
        dirs: 0,
        bytesScanned: 0,
        bytesRead: 0,
        bytesNew: 0,
        bytesStored: 0,
        blobsNew: 0,
        durationMs: 0,
        warnings: [],
      },
    });
    return id;
  }
}

function base(name: string): Omit<TreeNode, 'type'> {
  return {
    name,
    mode: 0o644,
    mtimeNs: '1000000000000000000',
    ctimeNs: '0',
    size: 0,
    uid: 0,
    gid: 0,
    inode: '1',
  };
}

for (const kind of backends()) {
  describe(`restore of hostile snapshots (${kind} storage)`, () => {
    let work: string;
    let storage: TestStorage;
    let repo: Repository;
    let ctx: RepositoryContext;
    let outside: string;

    before(async () => {
      work = await tempDir('hostile');
      storage = await createTestStorage(kind);
      outside = join(work, 'outside');
      await mkdir(outside);
      repo = await newRepository(storage.open(storage.location('repo')));
      ctx = (repo as unknown as { ctx: RepositoryContext }).ctx;
    });

    after(async () => {
      await storage.cleanup();
      await removeDir(work);
    });

    async function forge(build: (f: SnapshotForger) => Promise<TreeNode[]>): Promise<string> {
      const f = new SnapshotForger(ctx, await ctx.loadIndex());
      return f.snapshot(await build(f));
    }

    async function assertNothingEscaped(target: string): Promise<void> {
      assert.deepEqual(await readdir(outside), []);
      assert.equal(existsSync(join(work, 'evil')), false);
      assert.equal(existsSync('/evil'), false);
      if (existsSync(target)) assert.deepEqual(await readdir(target), []);
    }

    const unsafeNames = ['../evil', '/evil', 'a/b', '..', '.', '', 'nul\0byte'];
    for (const name of unsafeNames) {
      it(`refuses the entry name ${JSON.stringify(name)} before writing anything`, async () => {
        const id = await forge(async (f) => [f.file('harmless'), f.file(name)]);
        const target = join(work, `t-${unsafeNames.indexOf(name)}`);
        await assert.rejects(repo.restore({ snapshotId: id, target }), (e) => {
          assert.ok(isCofferError(e, 'RepositoryCorrupt'), String(e));
          assert.match(e.message, /unsafe entry name/);
          return true;
        });
        await assertNothingEscaped(target);
      });
    }

    it('refuses a ".." directory whose subtree would land outside', async () => {
      const id = await forge(async (f) => [await f.dir('..', [f.file('evil')])]);
      const target = join(work, 't-dotdot-dir');
      await assert.rejects(repo.restore({ snapshotId: id, target }), (e) =>
        isCofferError(e, 'RepositoryCorrupt'),
      );
      await assertNothingEscaped(target);
    });

    it('refuses a symlink and a directory of the same name (link -> outside, then link/file)', async () => {
      const id = await forge(async (f) => [
        f.symlink('link', outside),
        await f.dir('link', [f.file('file')]),
      ]);
      const target = join(work, 't-link-dir');
      await assert.rejects(repo.restore({ snapshotId: id, target }), (e) => {
        assert.ok(isCofferError(e, 'RepositoryCorrupt'));
        assert.match(e.message, /twice/);
        return true;
      });
      await assertNothingEscaped(target);
      const report = await repo.check({ readData: false });
      assert.ok(report.issues.some((i) => i.kind === 'tree-unsafe-name'));
    });

    it('never descends through a symlink already present in the target', async () => {
      const target = join(work, 't-preexisting');
      await mkdir(target);
      await symlink(outside, join(target, 'sub'));
      const id = await forge(async (f) => [await f.dir('sub', [f.file('file')])]);
      await assert.rejects(repo.restore({ snapshotId: id, target }), (e) =>
        isCofferError(e, 'RestoreTargetInvalid'),
      );
      assert.deepEqual(await readdir(outside), []);
    });

    it('replaces an existing symlink with the file instead of writing through it', async () => {
      const target = join(work, 't-replace');
      await mkdir(target);
      const victim = join(work, 'victim');
      await writeFile(victim, 'original');
      await symlink(victim, join(target, 'f'));
      const id = await forge(async (f) => [f.file('f'), f.symlink('l', outside)]);
      await repo.restore({ snapshotId: id, target });
      assert.equal(await readFile(victim, 'utf8'), 'original');
      assert.ok((await lstat(join(target, 'f'))).isFile());
      assert.deepEqual(await readFile(join(target, 'f')), EVIL);
      assert.equal(await readlink(join(target, 'l')), outside);
      assert.deepEqual(await readdir(outside), []);
    });
  });
}
