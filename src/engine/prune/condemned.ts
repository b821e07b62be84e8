/**
 * condemned/<64 hex random>: sealed, zstd-compressed JSON `{ version: 1, markTime, packs }`
 * written by prune's mark. Its packs held no blob that a committed or pending snapshot needed when
 * they were marked; backups that see the file never deduplicate against them, and a later sweep
 * deletes them once every backup that was running at `markTime` has ended.
 *
 * `markTime` is null while the list is being stamped: prune first writes the list unstamped, then,
 * once it is visible, writes a stamped copy (markTime = a clock reading taken after that) and
 * removes the unstamped one. So every backup that starts after `markTime` is guaranteed to have
 * seen the list. Sweeps ignore unstamped lists; the next prune stamps any a crash left behind.
 */
import { randomBytes } from 'node:crypto';
import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import { openJson, sealJson } from '../crypto/sealed-json.js';
import { loadAllFiles } from '../index/master-index.js';

export const CONDEMNED_DIR = 'condemned';

export interface CondemnedList {
  /** File name below condemned/. */
  name: string;
  /** Epoch ms after which every starting backup honours the list; null while unstamped. */
  markTime: number | null;
  packs: string[];
}

interface CondemnedFileContent {
  version: 1;
  markTime: number | null;
  packs: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseCondemned(value: unknown, path: string): CondemnedFileContent {
  const v = value as Partial<CondemnedFileContent> | null;
  const ok =
    !!v &&
    v.version === 1 &&
    (v.markTime === null || (typeof v.markTime === 'number' && Number.isFinite(v.markTime))) &&
    Array.isArray(v.packs) &&
    v.packs.every((p) => typeof p === 'string' && HEX64.test(p));
  if (!ok) throw new CofferError('RepositoryCorrupt', `${path} is not a valid condemned list`, { path });
  return v as CondemnedFileContent;
}

export async function readCondemnedList(backend: Backend, key: Buffer, name: string): Promise<CondemnedList> {
  const path = `${CONDEMNED_DIR}/${name}`;
  const c = parseCondemned(openJson(key, await backend.load(path), path), path);
  return { name, markTime: c.markTime, packs: c.packs };
}

/**
 * Every condemned list present now (a list replaced while we read is found again under its new
 * name). An unreadable list is an error, never skipped: ignoring it could let a backup reuse a
 * pack that a sweep is about to delete.
 */
export async function loadCondemnedLists(backend: Backend, key: Buffer): Promise<CondemnedList[]> {
  const lists = await loadAllFiles(backend, CONDEMNED_DIR, (name) => readCondemnedList(backend, key, name));
  return [...lists.values()];
}

export async function loadCondemnedPacks(backend: Backend, key: Buffer): Promise<Set<string>> {
  const packs = new Set<string>();
  for (const l of await loadCondemnedLists(backend, key)) for (const p of l.packs) packs.add(p);
  return packs;
}

export async function writeCondemnedList(
  backend: Backend,
  key: Buffer,
  markTime: number | null,
  packs: string[],
): Promise<CondemnedList> {
  const name = randomBytes(32).toString('hex');
  const content: CondemnedFileContent = { version: 1, markTime, packs };
  await backend.save(`${CONDEMNED_DIR}/${name}`, sealJson(key, content, true));
  return { name, markTime, packs };
}

/**
 * Writes a stamped copy of a visible list, then removes the unstamped one (write-new-then-remove-old:
 * at every instant at least one of the two is visible to starting backups).
 */
export async function stampCondemnedList(
  backend: Backend,
  key: Buffer,
  unstamped: CondemnedList,
): Promise<CondemnedList> {
  const stamped = await writeCondemnedList(backend, key, Date.now(), unstamped.packs);
  await backend.remove(`${CONDEMNED_DIR}/${unstamped.name}`);
  return stamped;
}

export async function removeCondemnedList(backend: Backend, list: CondemnedList): Promise<void> {
  await backend.remove(`${CONDEMNED_DIR}/${list.name}`);
}
