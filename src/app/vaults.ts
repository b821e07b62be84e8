/** Use cases for vaults and protected items, shared by every adapter. */
import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Item, Vault } from '../catalog/store.js';
import { Repository } from '../engine/index.js';
import { CofferError } from '../errors/coffer-error.js';
import { openBackend } from '../storage/open-backend.js';
import type { AppContext } from './context.js';

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

export async function createVault(app: AppContext, name: string, location: string): Promise<Vault> {
  validateName('vault', name);
  // Refuse a duplicate name before touching storage, so no orphan repository is created.
  const existing = await app.store.getVault(name).catch(() => null);
  if (existing)
    throw new CofferError('VaultAlreadyExists', `a vault named '${name}' already exists`, { vault: name });
  const where = /^[a-z0-9]+:\/\//i.test(location) ? location : resolve(location);
  const repo = await Repository.init(openBackend(where), app.password());
  return app.store.createVault({ name, location: where, repositoryId: repo.id });
}

export async function openVaultRepository(app: AppContext, vault: Vault): Promise<Repository> {
  return Repository.open(openBackend(vault.location), app.password());
}

export async function addItem(
  app: AppContext,
  opts: { name: string; vaultRef: string; path: string; policyId?: string | null },
): Promise<Item> {
  validateName('item', opts.name);
  const vault = await app.store.getVault(opts.vaultRef);
  const sourcePath = await canonicalSource(opts.path);
  return app.store.addItem({
    name: opts.name,
    vaultId: vault.id,
    sourcePath,
    policyId: opts.policyId ?? null,
  });
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
): Promise<{ item: Item; from: Vault; to: Vault }> {
  const item = await app.store.getItem(itemRef);
  const to = await app.store.getVault(vaultRef);
  const from = await app.store.getVault(item.vaultId);
  return { item: await app.store.moveItem(item.id, to.id), from, to };
}
