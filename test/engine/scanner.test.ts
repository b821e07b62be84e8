/**
 * The progress scanner of a first backup (archiver/scanner.ts) and the count it runs on pool
 * threads (file-work.ts countTree): its totals are the tree's regular files and their bytes,
 * however the count is split into requests.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Scanner } from '../../src/engine/archiver/scanner.js';
import { BlobPool } from '../../src/engine/parallel/blob-pool.js';
import { countTree, type TreeCount } from '../../src/engine/parallel/file-work.js';

/** Files and bytes under `dir` by a plain recursive walk: what the scanner must arrive at. */
function expected(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    const st = lstatSync(join(dir, name));
    if (st.isDirectory()) {
      const sub = expected(join(dir, name));
      files += sub.files;
      bytes += sub.bytes;
    } else if (st.isFile()) {
      files++;
      bytes += st.size;
    }
  }
  return { files, bytes };
}

describe('progress scanner', () => {
  let root: string;
  const pool = new BlobPool(2);

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'coffer-scanner-'));
    // 3 levels of 4 directories, 5 files each of different sizes, and an empty directory.
    let n = 0;
    const fill = (dir: string, depth: number): void => {
      for (let f = 0; f < 5; f++) writeFileSync(join(dir, `f${f}`), Buffer.alloc(n++ * 37 + f));
      if (depth === 0) return;
      for (let d = 0; d < 4; d++) {
        mkdirSync(join(dir, `d${d}`));
        fill(join(dir, `d${d}`), depth - 1);
      }
    };
    fill(root, 3);
    mkdirSync(join(root, 'empty'));
    // Links count as neither files nor directories, even when they point at one.
    symlinkSync('f0', join(root, 'link-to-file'));
    symlinkSync('d0', join(root, 'link-to-dir'));
    execFileSync('mkfifo', [join(root, 'd1', 'fifo')]);
  });
  after(async () => {
    await pool.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('counts the regular files and their bytes, in requests of any size', async () => {
    const want = expected(root);
    assert.equal(want.files, 5 * (1 + 4 + 16 + 64));
    for (const ahead of [1, 7, 50, 100_000]) {
      const requests: TreeCount[] = [];
      const scanner = new Scanner(root, (dir) => {
        const c = countTree(dir, ahead);
        requests.push(c);
        return Promise.resolve(c);
      });
      await scanner.run();
      assert.equal(scanner.done, true);
      assert.deepEqual({ files: scanner.filesTotal, bytes: scanner.bytesTotal }, want, `ahead ${ahead}`);
      // A small budget really splits the count; a large one takes it whole.
      if (ahead <= 50) assert.ok(requests.length > 1, `ahead ${ahead}: ${requests.length} request(s)`);
      else assert.equal(requests.length, 1);
    }
  });

  it('counts the same on pool threads', async () => {
    const scanner = new Scanner(root, (dir) => pool.countTree(dir, 20));
    await scanner.run();
    assert.deepEqual({ files: scanner.filesTotal, bytes: scanner.bytesTotal }, expected(root));
  });

  it('hands back what it did not get to, and skips what it cannot list', () => {
    const first = countTree(root, 1);
    // The root's listing is more than the budget: its subdirectories are all left for later.
    assert.equal(first.files, 5);
    assert.deepEqual(first.pending.map((p) => p.slice(root.length + 1)).sort(), [
      'd0',
      'd1',
      'd2',
      'd3',
      'empty',
    ]);
    assert.deepEqual(countTree(join(root, 'missing'), 10), { files: 0, bytes: 0, pending: [] });
  });

  it('stops when told to', async () => {
    let requests = 0;
    const scanner = new Scanner(root, (dir) => {
      requests++;
      if (requests === 2) scanner.stop();
      return Promise.resolve(countTree(dir, 1));
    });
    await scanner.run();
    assert.equal(requests, 2);
    assert.equal(scanner.done, true);
    assert.ok(scanner.filesTotal < expected(root).files);
  });
});
