import { randomBytes } from 'node:crypto';
import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import type { BackupStats } from '../archiver/backup-types.js';
import { openJson, sealJson } from '../crypto/sealed-json.js';
import { mapLimit } from '../concurrency.js';

export type SnapshotState = 'committed' | 'pending';

/** The JSON sealed at snapshots/<id> (committed) or pending/<id> (written by a backup, not yet accepted). */
export interface SnapshotContent {
  version: 1;
  time: string;
  hostname: string;
  sourcePath: string;
  rootTreeId: string;
  parentSnapshotId: string | null;
  tags: Record<string, string>;
  summary: BackupStats;
}

export interface SnapshotSummary {
  id: string;
  state: SnapshotState;
  time: string;
  hostname: string;
  sourcePath: string;
  parentSnapshotId: string | null;
  tags: Record<string, string>;
  summary: BackupStats;
}

export interface Snapshot extends SnapshotSummary {
  rootTreeId: string;
}

const DIRS: Record<SnapshotState, string> = { committed: 'snapshots', pending: 'pending' };
const FULL_ID = /^[0-9a-f]{64}$/;
const ID_PREFIX = /^[0-9a-f]{8,63}$/;

export function newSnapshotId(): string {
  return randomBytes(32).toString('hex');
}

export function snapshotPath(state: SnapshotState, id: string): string {
  return `${DIRS[state]}/${id}`;
}

export async function saveSnapshot(
  backend: Backend,
  key: Buffer,
  state: SnapshotState,
  id: string,
  content: SnapshotContent,
): Promise<void> {
  await backend.save(snapshotPath(state, id), sealJson(key, content, false));
}

function parseSnapshot(value: unknown, path: string): SnapshotContent {
  const s = value as Partial<SnapshotContent> | null;
  if (
    !s ||
    typeof s.time !== 'string' ||
    typeof s.rootTreeId !== 'string' ||
    !FULL_ID.test(s.rootTreeId) ||
    typeof s.sourcePath !== 'string' ||
    typeof s.tags !== 'object' ||
    s.tags === null ||
    typeof s.summary !== 'object'
  ) {
    throw new CofferError('RepositoryCorrupt', `${path} is not a valid snapshot`, { path });
  }
  return s as SnapshotContent;
}

export async function readSnapshot(
  backend: Backend,
  key: Buffer,
  state: SnapshotState,
  id: string,
): Promise<Snapshot> {
  const path = snapshotPath(state, id);
  const c = parseSnapshot(openJson(key, await backend.load(path), path), path);
  return {
    id,
    state,
    time: c.time,
    hostname: c.hostname,
    sourcePath: c.sourcePath,
    parentSnapshotId: c.parentSnapshotId ?? null,
    tags: c.tags,
    summary: c.summary,
    rootTreeId: c.rootTreeId,
  };
}

/** Accepts a full id or a unique prefix of at least 8 hex digits, as operators copy short ids. */
export async function resolveSnapshotId(
  backend: Backend,
  id: string,
): Promise<{ id: string; state: SnapshotState }> {
  if (FULL_ID.test(id)) {
    for (const state of ['committed', 'pending'] as const) {
      if (await backend.stat(snapshotPath(state, id))) return { id, state };
    }
  } else if (ID_PREFIX.test(id)) {
    const matches: { id: string; state: SnapshotState }[] = [];
    for (const state of ['committed', 'pending'] as const) {
      for (const name of await backend.list(DIRS[state])) {
        if (name.startsWith(id) && FULL_ID.test(name)) matches.push({ id: name, state });
      }
    }
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new CofferError('InvalidRequest', `snapshot id prefix ${id} is ambiguous`, { snapshotId: id });
    }
  }
  throw new CofferError('PointNotFound', `no recovery point ${id} in this vault`, { snapshotId: id });
}

export async function loadSnapshot(backend: Backend, key: Buffer, id: string): Promise<Snapshot> {
  const found = await resolveSnapshotId(backend, id);
  return readSnapshot(backend, key, found.state, found.id);
}

export async function listSnapshots(
  backend: Backend,
  key: Buffer,
  includePending: boolean,
): Promise<Snapshot[]> {
  const states: SnapshotState[] = includePending ? ['committed', 'pending'] : ['committed'];
  const refs: { id: string; state: SnapshotState }[] = [];
  for (const state of states) {
    for (const name of await backend.list(DIRS[state]))
      if (FULL_ID.test(name)) refs.push({ id: name, state });
  }
  const all = await mapLimit(refs, 8, (r) => readSnapshot(backend, key, r.state, r.id));
  // A commit interrupted between save and remove leaves both copies; the committed one wins.
  const committed = new Set(all.filter((s) => s.state === 'committed').map((s) => s.id));
  return all
    .filter((s) => s.state === 'committed' || !committed.has(s.id))
    .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
}

export async function commitSnapshot(backend: Backend, id: string): Promise<void> {
  if (!FULL_ID.test(id))
    throw new CofferError('PointNotFound', `no recovery point ${id} in this vault`, { snapshotId: id });
  const pending = snapshotPath('pending', id);
  const committed = snapshotPath('committed', id);
  if (await backend.stat(pending)) {
    await backend.save(committed, await backend.load(pending));
    await backend.remove(pending);
    return;
  }
  if (await backend.stat(committed)) return;
  throw new CofferError('PointNotFound', `no pending recovery point ${id} to commit`, { snapshotId: id });
}

export async function discardSnapshot(backend: Backend, id: string): Promise<void> {
  if (!FULL_ID.test(id)) return;
  await backend.remove(snapshotPath('pending', id));
}

/** Removes committed and pending copies of each snapshot; ids must be full. Missing ones are fine. */
export async function forgetSnapshots(backend: Backend, ids: string[]): Promise<void> {
  for (const id of ids) {
    if (typeof id !== 'string' || !FULL_ID.test(id)) {
      throw new CofferError('InvalidRequest', `'${String(id)}' is not a full snapshot id (64 hex digits)`, {
        field: 'ids',
        snapshotId: id,
      });
    }
  }
  for (const id of ids) {
    await backend.remove(snapshotPath('committed', id));
    await backend.remove(snapshotPath('pending', id));
  }
}

/**
 * Every snapshot that still counts (committed and pending), for prune. Pending is listed before
 * committed: commitSnapshot saves the committed copy before removing the pending one, so a snapshot
 * committed while we list is seen in at least one of the two listings. A file that vanishes before
 * it is read was committed (read the committed copy) or forgotten (skip it). A damaged snapshot is
 * an error: prune cannot know what it needs.
 */
export async function loadLiveSnapshots(backend: Backend, key: Buffer): Promise<Snapshot[]> {
  const pending = (await backend.list(DIRS.pending)).filter((n) => FULL_ID.test(n));
  const committed = (await backend.list(DIRS.committed)).filter((n) => FULL_ID.test(n));
  const refs = new Map<string, SnapshotState>();
  for (const id of pending) refs.set(id, 'pending');
  for (const id of committed) refs.set(id, 'committed');
  const loaded = await mapLimit([...refs], 8, async ([id, state]): Promise<Snapshot | null> => {
    for (const s of state === 'pending' ? (['pending', 'committed'] as const) : (['committed'] as const)) {
      try {
        return await readSnapshot(backend, key, s, id);
      } catch (err) {
        if (await backend.stat(snapshotPath(s, id))) throw err;
      }
    }
    return null;
  });
  return loaded.filter((s): s is Snapshot => s !== null);
}
