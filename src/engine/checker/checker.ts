import { createHash } from 'node:crypto';
import { throwIfCancelled } from '../cancellation.js';
import { openJson } from '../crypto/sealed-json.js';
import { parseKeyFile } from '../crypto/key-file.js';
import { mapLimit } from '../concurrency.js';
import { type IndexedPack, loadAllFiles, MasterIndex, readIndexFile } from '../index/master-index.js';
import { sharedBlobPool } from '../parallel/blob-pool.js';
import { packHeaderFromBytes, type PackedBlob } from '../pack/pack-format.js';
import { packPath } from '../pack/pack-writer.js';
import { parseConfig } from '../repository/repository-config.js';
import type { RepositoryContext } from '../repository/repository-context.js';
import { CONDEMNED_DIR, readCondemnedList } from '../prune/condemned.js';
import { readSnapshot, type Snapshot, snapshotPath } from '../snapshot/snapshot.js';
import { isSafeName } from '../tree/tree.js';
import type { CheckIssue, CheckProgress, CheckReport } from './check-types.js';

export interface CheckOptions {
  readData: boolean;
  signal?: AbortSignal;
  onProgress?: (p: CheckProgress) => void;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function runCheck(ctx: RepositoryContext, opts: CheckOptions): Promise<CheckReport> {
  const { backend, key } = ctx;
  const issues: CheckIssue[] = [];
  const counts = { snapshots: 0, indexFiles: 0, packs: 0, blobs: 0, trees: 0, bytesRead: 0 };
  let phase: CheckProgress['phase'] = 'structure';
  let packsDone = 0;
  let packsTotal = 0;
  const emit = (): void => opts.onProgress?.({ phase, packsDone, packsTotal, bytesRead: counts.bytesRead });
  const cancelled = (): void => throwIfCancelled(opts.signal, 'the check');

  // Keys and config: the key we opened with works, but the others must still parse.
  for (const name of await backend.list('keys')) {
    try {
      parseKeyFile(await backend.load(`keys/${name}`), `keys/${name}`);
    } catch (err) {
      issues.push({ kind: 'key-malformed', severity: 'error', message: message(err), ids: { key: name } });
    }
  }
  try {
    parseConfig(openJson(key, await backend.load('config'), 'config'));
  } catch (err) {
    issues.push({
      kind: 'config-unreadable',
      severity: 'error',
      message: message(err),
      ids: { path: 'config' },
    });
  }

  // Condemned lists (prune), before the index: see RepositoryContext.loadIndex.
  const condemned = new Set<string>();
  await loadAllFiles(backend, CONDEMNED_DIR, async (name) => {
    try {
      for (const p of (await readCondemnedList(backend, key, name)).packs) condemned.add(p);
    } catch (err) {
      if (!(await backend.stat(`${CONDEMNED_DIR}/${name}`))) throw err; // replaced meanwhile: re-listed
      issues.push({
        kind: 'condemned-unreadable',
        severity: 'error',
        message: `${message(err)} (backups refuse to start until it is removed or repaired)`,
        ids: { path: `${CONDEMNED_DIR}/${name}` },
      });
    }
  });

  // Index files, and the packs they promise.
  const index = new MasterIndex(condemned);
  const indexedPacks = new Map<string, IndexedPack>();
  const indexFiles = await loadAllFiles(backend, 'index', async (name) => {
    try {
      const content = await readIndexFile(backend, key, name);
      for (const p of content.packs) {
        index.addPack(p);
        indexedPacks.set(p.id, p);
      }
    } catch (err) {
      if (!(await backend.stat(`index/${name}`))) throw err; // replaced by a prune meanwhile: re-listed
      issues.push({
        kind: 'index-unreadable',
        severity: 'error',
        message: message(err),
        ids: { index: name },
      });
    }
  });
  counts.indexFiles = indexFiles.size;
  cancelled();

  /**
   * A prune's sweep deletes a pack only after no index file lists it any more; an index read
   * before that still does. So a pack missing now is an error only if the current index lists it.
   */
  let latest: { started: number; packs: Promise<Set<string>> } | null = null;
  const stillIndexed = async (packId: string): Promise<boolean> => {
    const observed = performance.now();
    // Only an index read that began after the pack was seen missing can tell.
    if (!latest || latest.started < observed) {
      latest = {
        started: performance.now(),
        packs: loadAllFiles(backend, 'index', (name) => readIndexFile(backend, key, name)).then(
          (files) => new Set([...files.values()].flatMap((c) => c.packs.map((p) => p.id))),
          () => new Set(indexedPacks.keys()),
        ),
      };
    }
    return (await latest.packs).has(packId);
  };

  const packFiles = new Map<string, string>();
  for (const name of await backend.list('data')) {
    const id = name.slice(name.lastIndexOf('/') + 1);
    packFiles.set(id, `data/${name}`);
  }
  counts.packs = packFiles.size;
  counts.blobs = index.blobCount;
  await mapLimit([...indexedPacks.values()], 16, async (p) => {
    const st = await backend.stat(packPath(p.id));
    if (!st) {
      if (!(await stillIndexed(p.id))) return;
      issues.push({
        kind: 'pack-missing',
        severity: 'error',
        message: `pack ${p.id} is listed in the index but missing`,
        ids: { pack: p.id },
      });
    } else if (st.size !== p.size) {
      issues.push({
        kind: 'pack-size-mismatch',
        severity: 'error',
        message: `pack ${p.id} is ${st.size} bytes, the index says ${p.size}`,
        ids: { pack: p.id },
      });
    }
  });
  for (const [id, path] of packFiles) {
    if (condemned.has(id) && path === packPath(id)) {
      issues.push({
        kind: 'pack-condemned',
        severity: 'info',
        message: `${path} is condemned by a prune; it is deleted once the backups that were running at the mark have ended`,
        ids: { pack: id, path },
      });
    } else if (!indexedPacks.has(id) || path !== packPath(id)) {
      issues.push({
        kind: 'pack-unreferenced',
        severity: 'info',
        message: `${path} is in no index (left by an interrupted backup; harmless, prune removes it)`,
        ids: { pack: id, path },
      });
    }
  }
  emit();

  const snapshotExists = async (id: string): Promise<boolean> =>
    !!(await backend.stat(snapshotPath('committed', id))) ||
    !!(await backend.stat(snapshotPath('pending', id)));

  // Snapshots: every tree must load and every blob it names must be indexed.
  phase = 'snapshots';
  // Read one by one, so a damaged snapshot file is reported without hiding the others.
  const snapshots: Snapshot[] = [];
  for (const state of ['committed', 'pending'] as const) {
    for (const name of await backend.list(state === 'committed' ? 'snapshots' : 'pending')) {
      try {
        snapshots.push(await readSnapshot(backend, key, state, name));
      } catch (err) {
        // Committed or forgotten while we read: not damage.
        if (!(await backend.stat(snapshotPath(state, name)))) continue;
        issues.push({
          kind: 'snapshot-unreadable',
          severity: 'error',
          message: message(err),
          ids: { snapshot: name },
        });
      }
    }
  }
  counts.snapshots = snapshots.length;
  const visited = new Set<string>();
  for (const snap of snapshots) {
    const stack: { treeId: string; path: string }[] = [{ treeId: snap.rootTreeId, path: '' }];
    while (stack.length > 0) {
      cancelled();
      const { treeId, path } = stack.pop()!;
      if (visited.has(treeId)) continue;
      visited.add(treeId);
      let nodes;
      try {
        nodes = await ctx.loadTree(index, treeId);
      } catch (err) {
        // A snapshot forgotten meanwhile may have lost its trees to a prune: not damage.
        if (!(await snapshotExists(snap.id))) continue;
        issues.push({
          kind: 'tree-unreadable',
          severity: 'error',
          message: `${message(err)} (at /${path} in snapshot ${snap.id})`,
          ids: { tree: treeId, snapshot: snap.id, path: `/${path}` },
        });
        continue;
      }
      counts.trees++;
      for (const n of nodes) {
        const childPath = path === '' ? n.name : `${path}/${n.name}`;
        if (!isSafeName(n.name)) {
          issues.push({
            kind: 'tree-unsafe-name',
            severity: 'error',
            message: `tree ${treeId} has an entry named ${JSON.stringify(n.name)}`,
            ids: { tree: treeId, snapshot: snap.id },
          });
        }
        for (const id of n.content ?? []) {
          if (!index.has(id)) {
            issues.push({
              kind: 'blob-missing',
              severity: 'error',
              message: `data blob ${id} of /${childPath} (snapshot ${snap.id}) is in no index`,
              ids: { blob: id, snapshot: snap.id, path: `/${childPath}` },
            });
          }
        }
        if (n.type === 'dir' && n.subtree) stack.push({ treeId: n.subtree, path: childPath });
      }
    }
  }
  emit();

  if (opts.readData) {
    phase = 'data';
    const toRead = [...indexedPacks.values()].filter((p) => packFiles.has(p.id));
    packsTotal = toRead.length;
    await mapLimit(toRead, 2, async (p) => {
      cancelled();
      let bytes: Buffer;
      try {
        bytes = await backend.load(packPath(p.id));
      } catch (err) {
        if (!(await backend.stat(packPath(p.id))) && !(await stillIndexed(p.id))) return; // swept meanwhile
        throw err;
      }
      counts.bytesRead += bytes.length;
      await checkPackBytes(ctx, p, bytes, issues);
      packsDone++;
      emit();
    });
  }

  // Name the files behind damaged data: what an operator loses, per snapshot.
  const unreadable = new Set<string>();
  for (const i of issues) {
    if (i.kind === 'blob-damaged' && i.ids.blob) unreadable.add(i.ids.blob);
    if (i.kind === 'pack-missing' && i.ids.pack) {
      for (const b of indexedPacks.get(i.ids.pack)?.blobs ?? []) unreadable.add(b.id);
    }
  }
  if (unreadable.size > 0) issues.push(...(await filesUsing(ctx, index, snapshots, unreadable)));

  return { ok: !issues.some((i) => i.severity === 'error'), issues, counts };
}

/** One file-damaged issue per file of each snapshot that needs one of `blobs`. */
async function filesUsing(
  ctx: RepositoryContext,
  index: MasterIndex,
  snapshots: Snapshot[],
  blobs: Set<string>,
): Promise<CheckIssue[]> {
  // Per tree, the files below it that need a damaged blob: trees are shared between snapshots.
  const memo = new Map<string, { path: string; blobs: string[] }[]>();
  const hits = async (treeId: string): Promise<{ path: string; blobs: string[] }[]> => {
    const known = memo.get(treeId);
    if (known) return known;
    const out: { path: string; blobs: string[] }[] = [];
    memo.set(treeId, out);
    let nodes;
    try {
      nodes = await ctx.loadTree(index, treeId);
    } catch {
      return out; // reported as tree-unreadable above
    }
    for (const n of nodes) {
      const bad = [...new Set((n.content ?? []).filter((id) => blobs.has(id)))];
      if (bad.length) out.push({ path: n.name, blobs: bad });
      if (n.type === 'dir' && n.subtree) {
        for (const h of await hits(n.subtree)) out.push({ path: `${n.name}/${h.path}`, blobs: h.blobs });
      }
    }
    return out;
  };
  const issues: CheckIssue[] = [];
  for (const snap of snapshots) {
    const item = snap.tags.itemName ? ` of item '${snap.tags.itemName}'` : '';
    for (const h of await hits(snap.rootTreeId)) {
      issues.push({
        kind: 'file-damaged',
        severity: 'error',
        message:
          `/${h.path} in snapshot ${snap.id}${item} needs damaged data (blob ${h.blobs.join(', ')}); ` +
          "restoring this file fails with RepositoryCorrupt, the snapshot's other files restore",
        ids: { snapshot: snap.id, path: `/${h.path}`, blob: h.blobs[0], blobs: h.blobs },
      });
    }
  }
  return issues;
}

async function checkPackBytes(
  ctx: RepositoryContext,
  p: IndexedPack,
  bytes: Buffer,
  issues: CheckIssue[],
): Promise<void> {
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== p.id) {
    issues.push({
      kind: 'pack-hash-mismatch',
      severity: 'error',
      message: `pack ${p.id} content hashes to ${actual}: it was modified or damaged`,
      ids: { pack: p.id },
    });
  }
  let header: PackedBlob[] | null = null;
  try {
    header = packHeaderFromBytes(ctx.key, bytes, p.id);
  } catch (err) {
    issues.push({
      kind: 'pack-header-damaged',
      severity: 'error',
      message: message(err),
      ids: { pack: p.id },
    });
  }
  if (header) {
    const inHeader = new Map(header.map((b) => [b.id, b]));
    for (const b of p.blobs) {
      const h = inHeader.get(b.id);
      if (!h || h.offset !== b.offset || h.length !== b.length) {
        issues.push({
          kind: 'pack-header-mismatch',
          severity: 'error',
          message: `blob ${b.id} in pack ${p.id}: the pack header and the index disagree on where it is`,
          ids: { pack: p.id, blob: b.id },
        });
      }
    }
  }
  // Every blob is opened and hash-checked on an engine thread, a pack per request: with two packs
  // read at once, both cores verify (the bytes move to the thread; nothing here reads them again).
  for (const d of await sharedBlobPool().verifyPack(ctx.key, bytes, p.blobs, p.id)) {
    issues.push({
      kind: 'blob-damaged',
      severity: 'error',
      message: d.message,
      ids: { pack: p.id, blob: d.id },
    });
  }
}
