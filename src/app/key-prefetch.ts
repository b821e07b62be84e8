/**
 * A backup's (or restore's) vault key derived while the CLI is still loading. Why: opening a vault derives its
 * key-encryption key with scrypt, which costs a tenth of a second of one core on purpose
 * (engine/crypto/key-file.ts), and a backup with little to do spent that tenth waiting, after the
 * tenth the CLI takes to load its code and admit the job. Node runs scrypt on its thread pool, so
 * started first thing it runs on the other core while the main thread loads.
 *
 * Neither the catalog nor the vault is read for this (both would need the code that is still
 * loading): COFFER_HOME/key-hints.json remembers, for each item backed up from this home, the salt
 * and cost of the key file that opened its vault. Those are stored unencrypted in the vault and are
 * no secret; no key or password is written anywhere. A stale hint (the item moved to another
 * vault, its key file replaced) costs one wasted derivation: the vault is opened as always, and a
 * derivation made ahead is used only for the same password, salt and cost.
 *
 * This module is imported before the rest of the CLI (cli/main.ts), so it imports only what it
 * needs, not the engine's index, which would load the whole engine first.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deriveKeyAhead, type KdfParams } from '../engine/crypto/key-file.js';
import { loadConfig, readPassword } from './config.js';

const HINTS_FILE = 'key-hints.json';
/** Items remembered at most; past that the file starts over (it only saves time). */
const MAX_HINTS = 256;

interface KeyHints {
  version: 1;
  /** Item name or id, as `coffer backup` is given it -> the key file's salt and cost. */
  items: Record<string, KdfParams>;
}

export function keyHintsPath(home: string): string {
  return join(home, HINTS_FILE);
}

function readHints(home: string): KeyHints {
  try {
    const parsed = JSON.parse(readFileSync(keyHintsPath(home), 'utf8')) as Partial<KeyHints> | null;
    if (parsed?.version === 1 && parsed.items && typeof parsed.items === 'object') {
      return { version: 1, items: parsed.items };
    }
  } catch {
    // Missing or unreadable: no hints yet.
  }
  return { version: 1, items: {} };
}

function sameKdf(a: KdfParams | undefined, b: KdfParams): boolean {
  return !!a && a.salt === b.salt && a.N === b.N && a.r === b.r && a.p === b.p;
}

/**
 * Remembers that `refs` (an item's name and id) open their vault with a key file of `kdf`. Writes
 * only when something changed; a failure to write is ignored (the hint only saves time).
 */
export function rememberKeyHint(home: string, refs: readonly string[], kdf: KdfParams): void {
  const hints = readHints(home);
  if (refs.every((ref) => sameKdf(hints.items[ref], kdf))) return;
  if (Object.keys(hints.items).length + refs.length > MAX_HINTS) hints.items = {};
  for (const ref of refs) hints.items[ref] = { salt: kdf.salt, N: kdf.N, r: kdf.r, p: kdf.p };
  const file = keyHintsPath(home);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(hints)}\n`, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // No home directory (a PostgreSQL catalog needs none), read-only, full: the next backup
    // derives its key after loading, as before.
  }
}

/** Options of `coffer`, `coffer backup` and `coffer restore` that take a value (see the command tree). */
const VALUE_OPTIONS = new Set([
  '--password-file',
  '--limit-read',
  '--idempotency-key',
  '--target',
  '--point',
  '--path',
]);

/** A command that opens an item's vault and runs the engine in this process. */
export interface ItemCommand {
  command: 'backup' | 'restore';
  item: string;
  passwordFile?: string;
}

/**
 * The command and item of a `coffer backup ITEM` or `coffer restore ITEM …` command line run in
 * the foreground, and the password file it names, or null for any other command. A guess at
 * commander's parsing, kept simple: a wrong guess only starts work that is not used.
 */
export function itemCommandOf(args: readonly string[]): ItemCommand | null {
  const positional: string[] = [];
  let passwordFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--detach') return null;
    if (arg.startsWith('--password-file=')) passwordFile = arg.slice('--password-file='.length);
    else if (VALUE_OPTIONS.has(arg)) {
      if (arg === '--password-file') passwordFile = args[i + 1];
      i++;
    } else if (!arg.startsWith('-')) positional.push(arg);
  }
  const command = positional[0];
  if ((command !== 'backup' && command !== 'restore') || positional.length !== 2) return null;
  return { command, item: positional[1]!, ...(passwordFile !== undefined ? { passwordFile } : {}) };
}

/**
 * For `cmd` (see itemCommandOf) with a hint for its item and a password at hand, starts deriving
 * the vault's key-encryption key; otherwise does nothing. Never throws: whatever goes wrong here
 * happens again, and is reported, when the command opens the vault.
 */
export function startKeyPrefetch(cmd: ItemCommand, env: NodeJS.ProcessEnv = process.env): void {
  if (env.COFFER_KEY_PREFETCH === 'off') return;
  try {
    const config = loadConfig(env, { passwordFile: cmd.passwordFile });
    const kdf = readHints(config.home).items[cmd.item];
    if (!kdf || typeof kdf !== 'object') return;
    // The command reads the password file again: only a regular file reads the same twice (a
    // pipe, /dev/stdin or <(pass show …) would be empty the second time).
    if (config.passwordFile && !statSync(config.passwordFile).isFile()) return;
    deriveKeyAhead(kdf, readPassword(config));
  } catch {
    // No password, a bad environment: the command says so itself.
  }
}
