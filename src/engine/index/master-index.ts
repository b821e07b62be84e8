import { randomBytes } from 'node:crypto';
import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import { mapLimit } from '../concurrency.js';
import { openJson, sealJson } from '../crypto/sealed-json.js';
import type { PackedBlob } from '../pack/pack-format.js';

/** Where one blob lives. */
export interface IndexEntry extends PackedBlob {
  packId: string;
}

export interface IndexedPack {
  id: string;
  size: number;
  blobs: PackedBlob[];
}

/** The JSON inside index/<id>. Each backup writes its own file, so concurrent writers never share one. */
export interface IndexFileContent {
  version: 1;
  packs: IndexedPack[];
}

export class MasterIndex {
  private readonly blobs = new Map<string, IndexEntry>();
  /** Pack id -> size in bytes. */
  readonly packs = new Map<string, number>();

  addPack(pack: IndexedPack): void {
    this.packs.set(pack.id, pack.size);
    for (const b of pack.blobs) {
      if (!this.blobs.has(b.id)) this.blobs.set(b.id, { ...b, packId: pack.id });
    }
  }

  get(id: string): IndexEntry | undefined {
    return this.blobs.get(id);
  }

  has(id: string): boolean {
    return this.blobs.has(id);
  }

  get blobCount(): number {
    return this.blobs.size;
  }
}

function isPackedBlob(v: unknown): v is PackedBlob {
  const b = v as Partial<PackedBlob> | null;
  return (
    !!b &&
    typeof b.id === 'string' &&
    /^[0-9a-f]{64}$/.test(b.id) &&
    (b.type === 'data' || b.type === 'tree') &&
    Number.isInteger(b.offset) &&
    Number.isInteger(b.length) &&
    Number.isInteger(b.uncompressedLength) &&
    typeof b.compressed === 'boolean'
  );
}

export function parseIndexFile(value: unknown, path: string): IndexFileContent {
  const v = value as Partial<IndexFileContent> | null;
  const ok =
    !!v &&
    v.version === 1 &&
    Array.isArray(v.packs) &&
    v.packs.every(
      (p) =>
        typeof p?.id === 'string' &&
        /^[0-9a-f]{64}$/.test(p.id) &&
        Number.isInteger(p.size) &&
        Array.isArray(p.blobs) &&
        p.blobs.every(isPackedBlob),
    );
  if (!ok) throw new CofferError('RepositoryCorrupt', `${path} is not a valid index`, { path });
  return v as IndexFileContent;
}

export async function readIndexFile(backend: Backend, key: Buffer, name: string): Promise<IndexFileContent> {
  const path = `index/${name}`;
  return parseIndexFile(openJson(key, await backend.load(path), path), path);
}

/** Loads every index file present now. Files written later by concurrent backups are simply not seen. */
export async function loadMasterIndex(backend: Backend, key: Buffer): Promise<MasterIndex> {
  const index = new MasterIndex();
  const names = await backend.list('index');
  const contents = await mapLimit(names, 8, (name) => readIndexFile(backend, key, name));
  for (const c of contents) for (const p of c.packs) index.addPack(p);
  return index;
}

export async function writeIndexFile(backend: Backend, key: Buffer, packs: IndexedPack[]): Promise<string> {
  const id = randomBytes(32).toString('hex');
  const content: IndexFileContent = { version: 1, packs };
  await backend.save(`index/${id}`, sealJson(key, content, true));
  return id;
}
