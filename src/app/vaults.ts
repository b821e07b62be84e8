/** Use cases for vaults and protected items, shared by every adapter. */
import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Item, Vault } from '../catalog/store.js';
import { DEFAULT_COMPRESSION_LEVEL, parseCompressionLevel, Repository } from '../engine/index.js';
import { CofferError } from '../errors/coffer-error.js';
import { openBackend } from '../storage/open-backend.js';
import type { AppContext } from './context.js';
import { rememberKeyHint } from './key-prefetch.js';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function validateName(kind: 'vault' | 'item', name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new CofferError(
      'InvalidRequest',
      `${kind} name '${name}' is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { field: 'name', value: name },
    );
  }
}

export interface VaultCreateOptions {
  /** `off`, `fast`, `default`, `max` or a zstd level from 0 to 19 (parseCompressionLevel); default 3. */
  compression?: string | number;
}

export async function createVault(
  app: AppContext,
  name: string,
  location: string,
  actor: string,
  opts: VaultCreateOptions = {},
): Promise<Vault> {
  validateName('vault', name);
  // Bad settings are refused before anything is created.
  const compression = opts.compression === undefined ? undefined : parseCompressionLevel(opts.compression);
  // Refuse a duplicate name before touching storage, so no orphan repository is created.
  const existing = await app.store.getVault(name).catch(() => null);
  if (existing)
    throw new CofferError('VaultAlreadyExists', `a vault named '${name}' already exists`, { vault: name });
  const where = /^[a-z0-9]+:\/\//i.test(location) ? location : resolve(location);
  const repo = await Repository.init(openBackend(where), app.password(), { compression });
  const vault = await app.store.createVault({ name, location: where, repositoryId: repo.id });
  await app.store.audit(actor, 'vault.create', vault.id, {
    name,
    location: where,
    compression: compression ?? DEFAULT_COMPRESSION_LEVEL,
  });
  return vault;
}

export async function openVaultRepository(app: AppContext, vault: Vault): Promise<Repository> {
  return Repository.open(openBackend(vault.location), app.password());
}

export async function addItem(
  app: AppContext,
  opts: { name: string; vaultRef: string; path: string; policyId?: string | null },
  actor: string,
): Promise<Item> {
  validateName('item', opts.name);
  const vault = await app.store.getVault(opts.vaultRef);
  const sourcePath = await canonicalSource(opts.path);
  const item = await app.store.addItem({
    name: opts.name,
    vaultId: vault.id,
    sourcePath,
    policyId: opts.policyId ?? null,
  });
  await app.store.audit(actor, 'item.add', item.id, { name: item.name, vault: vault.name, path: sourcePath });
  await rememberVaultKey(app, item, vault);
  return item;
}

/**
 * Remembers the salt and cost of the vault's key for the item, so that even its first
 * `coffer backup` derives the key while the CLI loads (app/key-prefetch.ts); before, only a
 * backup after one that had opened the vault did, and a first backup waited a tenth of a second
 * for scrypt. Only for a vault with one key file (with more, which one the password opens is not
 * known yet: the first backup records it). Best effort: storage that cannot be read now costs
 * nothing but that tenth.
 */
async function rememberVaultKey(app: AppContext, item: Item, vault: Vault): Promise<void> {
  try {
    const keys = await Repository.keyParams(openBackend(vault.location));
    if (keys.length === 1) rememberKeyHint(app.config.home, [item.name, item.id], keys[0]!);
  } catch {
    // Unreachable or damaged storage: the backup reports it when it opens the vault.
  }
}

/** The real path of a readable directory: two spellings of one directory are one item. */
async function canonicalSource(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    const real = await realpath(abs);
    const s = await stat(real);
    if (!s.isDirectory())
      throw new CofferError('SourceUnreadable', `${abs} is not a directory`, { path: abs });
    return real;
  } catch (err) {
    if (err instanceof CofferError) throw err;
    throw new CofferError('SourceUnreadable', `cannot read ${abs}: ${(err as Error).message}`, { path: abs });
  }
}

export async function moveItem(
  app: AppContext,
  itemRef: string,
  vaultRef: string,
  actor: string,
): Promise<{ item: Item; from: Vault; to: Vault }> {
  const item = await app.store.getItem(itemRef);
  const to = await app.store.getVault(vaultRef);
  const from = await app.store.getVault(item.vaultId);
  const moved = await app.store.moveItem(item.id, to.id);
  await app.store.audit(actor, 'item.move', item.id, { from: from.name, to: to.name });
  await rememberVaultKey(app, moved, to);
  return { item: moved, from, to };
}

export interface VaultImport {
  vault: Vault;
  items: { name: string; id: string; created: boolean }[];
  pointsAdded: number;
  pointsKnown: number;
  skipped: string[];
}

/**
 * Registers an existing vault directory in this catalog and rebuilds its items and recovery
 * points from the snapshots in storage: the way back when the catalog is lost (SPEC §5: a
 * vault's storage alone is enough to list and restore its recovery points).
 */
export async function importVault(
  app: AppContext,
  name: string,
  location: string,
  actor: string,
): Promise<VaultImport> {
  validateName('vault', name);
  const where = /^[a-z0-9]+:\/\//i.test(location) ? location : resolve(location);
  const known = (await app.store.listVaults()).find((v) => v.location === where);
  if (known)
    throw new CofferError('VaultAlreadyExists', `${where} is already registered as vault '${known.name}'`, {
      vault: known.name,
      path: where,
    });
  const repo = await Repository.open(openBackend(where), app.password());
  const snapshots = await repo.listSnapshots();
  const vault = await app.store.createVault({ name, location: where, repositoryId: repo.id });
  await app.store.audit(actor, 'vault.import', vault.id, { name, location: where });
  const out: VaultImport = { vault, items: [], pointsAdded: 0, pointsKnown: 0, skipped: [] };
  const items = new Map<string, Item | null>();
  for (const s of [...snapshots].sort((a, b) => a.time.localeCompare(b.time))) {
    const itemId = s.tags.item;
    const itemName = s.tags.itemName ?? itemId;
    if (!itemId || !itemName) {
      out.skipped.push(`snapshot ${s.id.slice(0, 16)} names no coffer item (tags missing)`);
      continue;
    }
    if (!items.has(itemId)) {
      try {
        const { item, created } = await app.store.importItem({
          id: itemId,
          name: itemName,
          vaultId: vault.id,
          sourcePath: s.sourcePath,
        });
        items.set(itemId, item);
        out.items.push({ name: item.name, id: item.id, created });
      } catch (err) {
        if (!(err instanceof CofferError)) throw err;
        items.set(itemId, null);
        out.skipped.push(err.message);
      }
    }
    const item = items.get(itemId);
    if (!item) continue;
    const stats = s.summary;
    const added = await app.store.importPoint({
      id: s.id,
      itemId: item.id,
      vaultId: vault.id,
      jobId: s.tags.job ?? 'imported',
      parentId: s.parentSnapshotId,
      sourcePath: s.sourcePath,
      files: stats.filesNew + stats.filesChanged + stats.filesUnmodified,
      bytesScanned: stats.bytesScanned,
      bytesNew: stats.bytesNew,
      bytesStored: stats.bytesStored,
      snapshotTime: Date.parse(s.time),
    });
    if (added) out.pointsAdded++;
    else out.pointsKnown++;
  }
  return out;
}
