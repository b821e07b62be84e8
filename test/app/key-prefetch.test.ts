/**
 * The vault key derived while the CLI loads (app/key-prefetch.ts, engine/crypto/key-file.ts
 * deriveKeyAhead): a derivation made ahead is used only for the same password, salt and cost, a
 * wrong or stale hint never changes what a command does, and `coffer backup` keeps the hints.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { itemCommandOf, keyHintsPath, rememberKeyHint } from '../../src/app/key-prefetch.js';
import {
  deriveKeyAhead,
  derivationsStarted,
  kdfOf,
  unwrapMasterKey,
  wrapMasterKey,
} from '../../src/engine/crypto/key-file.js';
import { coffer, json } from '../support/cli.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';

const CHEAP = { N: 2 ** 10, r: 8, p: 1 };
const MASTER = Buffer.alloc(32, 7);

describe('key derivation ahead', () => {
  it('is used by the next unwrap of the same key file and password, once', async () => {
    const keyFile = await wrapMasterKey(MASTER, 'right', CHEAP);
    const before = derivationsStarted();
    deriveKeyAhead(kdfOf(keyFile), 'right');
    assert.deepEqual(await unwrapMasterKey(keyFile, 'right'), MASTER);
    assert.equal(derivationsStarted() - before, 1, 'the unwrap derived nothing itself');
    assert.deepEqual(await unwrapMasterKey(keyFile, 'right'), MASTER);
    assert.equal(derivationsStarted() - before, 2, 'a derivation ahead serves one unwrap');
  });

  it('is not used for another password or another key file', async () => {
    const keyFile = await wrapMasterKey(MASTER, 'right', CHEAP);
    const other = await wrapMasterKey(MASTER, 'right', CHEAP);
    const before = derivationsStarted();
    deriveKeyAhead(kdfOf(keyFile), 'wrong');
    assert.deepEqual(await unwrapMasterKey(keyFile, 'right'), MASTER);
    deriveKeyAhead(kdfOf(keyFile), 'right');
    assert.equal(await unwrapMasterKey(keyFile, 'wrong'), null, 'a wrong password still fails');
    deriveKeyAhead(kdfOf(other), 'right');
    assert.deepEqual(await unwrapMasterKey(keyFile, 'right'), MASTER);
    // The last unwrap took the derivation made ahead for the right password (the wrong guess for
    // the other key file stays unused).
    assert.equal(derivationsStarted() - before, 5);
  });

  it('ignores unusable parameters instead of deriving with them', () => {
    const before = derivationsStarted();
    const salt = Buffer.alloc(32, 1).toString('base64');
    for (const bad of [
      { salt, N: 2 ** 30, r: 8, p: 1 },
      { salt, N: 1000, r: 8, p: 1 },
      { salt, N: 1024, r: 0, p: 1 },
      { salt, N: 1024, r: 8, p: 99 },
      { salt, N: 2 ** 20, r: 8, p: 1 }, // 1 GiB of scrypt memory from an unauthenticated file
      { salt, N: 2 ** 15, r: 8, p: 8 },
      { salt: 'not base64!', N: 1024, r: 8, p: 1 },
      { salt: 42 as unknown as string, N: 1024, r: 8, p: 1 },
    ]) {
      deriveKeyAhead(bad, 'pw');
    }
    deriveKeyAhead({ salt, N: 1024, r: 8, p: 1 }, '');
    assert.equal(derivationsStarted(), before);
  });
});

describe('which command lines derive ahead', () => {
  it('finds the item of a foreground backup or restore among options', () => {
    const backup = (item: string, passwordFile?: string) => ({
      command: 'backup',
      item,
      ...(passwordFile ? { passwordFile } : {}),
    });
    assert.deepEqual(itemCommandOf(['backup', 'docs']), backup('docs'));
    assert.deepEqual(itemCommandOf(['backup', '--json', 'docs']), backup('docs'));
    assert.deepEqual(itemCommandOf(['backup', '--limit-read', '20M', 'docs', '--json']), backup('docs'));
    assert.deepEqual(itemCommandOf(['--password-file', '/p', 'backup', 'docs']), backup('docs', '/p'));
    assert.deepEqual(itemCommandOf(['--password-file=/p', 'backup', 'docs']), backup('docs', '/p'));
    assert.deepEqual(itemCommandOf(['restore', 'docs', '--target', '/t', '--point', 'abc']), {
      command: 'restore',
      item: 'docs',
    });
  });

  it('leaves every other command alone', () => {
    assert.equal(itemCommandOf(['backup', 'docs', '--detach']), null);
    assert.equal(itemCommandOf(['restore', 'docs', '--target', '/t', '--detach']), null);
    assert.equal(itemCommandOf(['backup']), null);
    assert.equal(itemCommandOf(['check', 'alpha']), null);
    assert.equal(itemCommandOf(['item', 'add', 'docs']), null);
    assert.equal(itemCommandOf([]), null);
  });
});

describe('key hints kept by coffer backup (real CLI)', () => {
  let w: World;
  let home: string;
  before(async () => {
    w = await createWorld('sqlite');
    home = w.env.COFFER_HOME!;
    await w.ok(['vault', 'create', 'alpha', '--path', join(w.root, 'vault')]);
    await makeRandomTree(join(w.root, 'src'), 4, 64 * 1024);
    await w.ok(['item', 'add', 'docs', '--vault', 'alpha', '--path', join(w.root, 'src')]);
  });
  after(() => w.close());

  /** The salt and cost of the one key file of the vault in `dir`, as a hint holds them. */
  async function keyOf(dir: string): Promise<Record<string, unknown>> {
    const [name] = await readdir(join(dir, 'keys'));
    const keyFile = JSON.parse(await readFile(join(dir, 'keys', name!), 'utf8')) as Record<string, unknown>;
    return { salt: keyFile.salt, N: keyFile.N, r: keyFile.r, p: keyFile.p };
  }
  const hintsNow = async () =>
    (JSON.parse(await readFile(keyHintsPath(home), 'utf8')) as { items: Record<string, unknown> }).items;

  it('item add and item move remember the key, so even the first backup derives it ahead', async () => {
    // Before any backup: `item add` in the before hook wrote it.
    const items = json<{ id: string; name: string }[]>(await w.ok(['item', 'list', '--json']));
    const docs = items.find((i) => i.name === 'docs')!;
    const alpha = await keyOf(join(w.root, 'vault'));
    assert.deepEqual((await hintsNow()).docs, alpha);
    assert.deepEqual((await hintsNow())[docs.id], alpha);
    // Moved to another vault, the item's hint follows it there, and back.
    await w.ok(['vault', 'create', 'beta', '--path', join(w.root, 'vault-beta')]);
    await w.ok(['item', 'move', 'docs', '--vault', 'beta']);
    const beta = await keyOf(join(w.root, 'vault-beta'));
    assert.notDeepEqual(beta, alpha);
    assert.deepEqual((await hintsNow()).docs, beta);
    await w.ok(['item', 'move', 'docs', '--vault', 'alpha']);
    assert.deepEqual((await hintsNow())[docs.id], alpha);
  });

  it('records the salt and cost of the vault’s key file under the item’s name and id', async () => {
    const job = json<{ state: string; item: { id: string } }>(await w.ok(['backup', 'docs', '--json']));
    assert.equal(job.state, 'completed');
    const hints = JSON.parse(await readFile(keyHintsPath(home), 'utf8')) as {
      items: Record<string, unknown>;
    };
    const keysDir = join(w.root, 'vault', 'keys');
    const [name] = await readdir(keysDir);
    const keyFile = JSON.parse(await readFile(join(keysDir, name!), 'utf8')) as Record<string, unknown>;
    const expected = { salt: keyFile.salt, N: keyFile.N, r: keyFile.r, p: keyFile.p };
    assert.deepEqual(hints.items.docs, expected);
    assert.deepEqual(hints.items[job.item.id], expected);
    assert.doesNotMatch(JSON.stringify(hints), new RegExp(String(keyFile.wrappedKey).slice(0, 16)));
  });

  it('a stale, garbled or hostile hint changes nothing, and a wrong password is still refused', async () => {
    const salt = Buffer.alloc(32, 9).toString('base64');
    for (const content of [
      JSON.stringify({ version: 1, items: { docs: { salt, N: 1024, r: 8, p: 1 } } }),
      JSON.stringify({ version: 1, items: { docs: { salt, N: 2 ** 40, r: 8, p: 1 } } }),
      JSON.stringify({ version: 1, items: { docs: 'nonsense' } }),
      '{ not json',
    ]) {
      await writeFile(keyHintsPath(home), content);
      const job = json<{ state: string }>(await w.ok(['backup', 'docs', '--json']));
      assert.equal(job.state, 'completed', content);
    }
    const wrong = await w.run(['backup', 'docs'], { COFFER_PASSWORD: 'not the password' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /VaultPasswordInvalid/);
    const hints = JSON.parse(await readFile(keyHintsPath(home), 'utf8')) as {
      items: Record<string, unknown>;
    };
    assert.notEqual(
      (hints.items.docs as { salt?: string }).salt,
      salt,
      'the last good backup wrote it again',
    );
  });

  it('a password file that reads only once (a pipe) is left to the command', async () => {
    // With a hint for the item, deriving ahead must not consume the pipe the command reads.
    json(await w.ok(['backup', 'docs', '--json']));
    const fifo = join(w.root, 'password.fifo');
    execFileSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', `printf '%s\\n' "$PW" > "${fifo}"`], {
      env: { ...process.env, PW: w.env.COFFER_PASSWORD },
      stdio: 'ignore',
    });
    try {
      const r = await coffer(
        ['--password-file', fifo, 'backup', 'docs', '--json'],
        { ...w.env, COFFER_PASSWORD: '' },
        { timeoutMs: 20_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(json<{ state: string }>(r).state, 'completed');
    } finally {
      writer.kill();
    }
  });

  it('rememberKeyHint writes only what changed and survives a home it cannot write', async () => {
    const kdf = { salt: Buffer.alloc(32, 3).toString('base64'), N: 1024, r: 8, p: 1 };
    rememberKeyHint(home, ['x'], kdf);
    const first = await readFile(keyHintsPath(home), 'utf8');
    rememberKeyHint(home, ['x'], kdf);
    assert.equal(await readFile(keyHintsPath(home), 'utf8'), first);
    const notADir = join(w.root, 'a-file');
    await writeFile(notADir, '');
    assert.doesNotThrow(() => rememberKeyHint(join(notADir, 'home'), ['x'], kdf));
  });
});
