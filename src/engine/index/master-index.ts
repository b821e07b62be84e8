import { randomBytes } from 'node:crypto';
import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import { mapLimit } from '../concurrency.js';
import { openSealed, sealBinary } from '../crypto/sealed-json.js';
import {
  BLOB_ENTRY_ID_AT,
  BLOB_ENTRY_SIZE,
  type PackedBlob,
  readBlobEntry,
  writeBlobEntry,
} from '../pack/pack-format.js';

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

/** Entries the tables start with; they double as a vault grows. */
const INITIAL_CAPACITY = 1024;
const FLAG_TREE = 1;
const FLAG_COMPRESSED = 2;

/**
 * Blob id -> where to read it. A blob stored in several packs (concurrent backups, prune's
 * repacking) resolves to a copy in a pack that no prune has condemned whenever one exists, so
 * readers that start after a mark never depend on a pack a sweep may delete.
 *
 * Held as typed arrays (the 32 id bytes, pack number, offset, lengths and flags of each blob)
 * with an open-addressed table over them, not as a Map of objects. Why: a backup loads the whole
 * index before it can compare anything, and on the 30,000-file benchmark vault (40,000 blobs) a
 * Map from hex ids to one object per blob took 60-75 ms to build and about 8 MB of the main
 * thread's heap; every backup of the vault paid it, an incremental one on its critical path.
 */
export class MasterIndex {
  /** Pack id -> size in bytes. */
  readonly packs = new Map<string, number>();
  private readonly packIds: string[] = [];
  private readonly packNumbers = new Map<string, number>();
  private readonly packCondemned: boolean[] = [];
  private count = 0;
  private capacity = 0;
  private ids = Buffer.alloc(0);
  /** The first four bytes of each id (little endian): the table's hash, and a quick compare. */
  private heads = new Uint32Array(0);
  private packOf = new Uint32Array(0);
  private offsets = new Uint32Array(0);
  private lengths = new Uint32Array(0);
  private plainLengths = new Uint32Array(0);
  private flags = new Uint8Array(0);
  /** Open addressing: entry number + 1, 0 for an empty slot; at most half full. */
  private table = new Int32Array(0);
  private readonly scratch = Buffer.alloc(32);

  /** `condemned`: packs listed in condemned/ files when this index was loaded (see prune). */
  constructor(readonly condemned: ReadonlySet<string> = new Set()) {}

  addPack(pack: IndexedPack): void {
    const p = this.packNumber(pack.id, pack.size);
    for (const b of pack.blobs) {
      if (b.id.length !== 64 || this.scratch.write(b.id, 'hex') !== 32) {
        throw new Error(`index: blob id ${b.id} is not 64 hex digits`);
      }
      const flags = (b.type === 'tree' ? FLAG_TREE : 0) | (b.compressed ? FLAG_COMPRESSED : 0);
      this.addEntry(this.scratch, 0, p, flags, b.offset, b.length, b.uncompressedLength);
    }
  }

  /**
   * Adds the packs of a binary index file's content (see encodeIndexFile) straight from its
   * bytes, no object per blob; a malformed file is RepositoryCorrupt and adds nothing.
   */
  addBinary(bytes: Buffer, path: string): void {
    // Every record is checked before anything is added.
    for (const pack of packRecords(bytes, path)) {
      const p = this.packNumber(pack.id, pack.size);
      for (let i = 0, o = pack.at; i < pack.count; i++, o += BLOB_ENTRY_SIZE) {
        const flags = (bytes[o] === 1 ? FLAG_TREE : 0) | ((bytes[o + 1]! & 1) === 1 ? FLAG_COMPRESSED : 0);
        const offset = bytes.readUInt32LE(o + 2);
        const length = bytes.readUInt32LE(o + 6);
        this.addEntry(bytes, o + BLOB_ENTRY_ID_AT, p, flags, offset, length, bytes.readUInt32LE(o + 10));
      }
    }
  }

  get(id: string): IndexEntry | undefined {
    const e = this.find(id);
    if (e < 0) return undefined;
    const flags = this.flags[e]!;
    return {
      id,
      type: flags & FLAG_TREE ? 'tree' : 'data',
      offset: this.offsets[e]!,
      length: this.lengths[e]!,
      uncompressedLength: this.plainLengths[e]!,
      compressed: (flags & FLAG_COMPRESSED) !== 0,
      packId: this.packIds[this.packOf[e]!]!,
    };
  }

  has(id: string): boolean {
    return this.find(id) >= 0;
  }

  /**
   * Whether a copy of the blob lives in a pack no prune has condemned. Backups deduplicate only
   * against such copies: a blob found only in condemned packs is stored again.
   */
  hasLive(id: string): boolean {
    const e = this.find(id);
    return e >= 0 && !this.packCondemned[this.packOf[e]!];
  }

  /** Ids of the blobs that have a live copy (see hasLive). */
  *liveIds(): IterableIterator<string> {
    for (let e = 0; e < this.count; e++) {
      if (!this.packCondemned[this.packOf[e]!]) yield this.ids.toString('hex', e * 32, e * 32 + 32);
    }
  }

  /**
   * Calls `visit` with the first 64 bits of each live blob's id, as two big-endian words (what
   * KnownBlobFilter keeps), without making the hex ids.
   */
  forEachLivePrefix(visit: (hi: number, lo: number) => void): void {
    for (let e = 0; e < this.count; e++) {
      if (this.packCondemned[this.packOf[e]!]) continue;
      visit(this.ids.readUInt32BE(e * 32), this.ids.readUInt32BE(e * 32 + 4));
    }
  }

  get blobCount(): number {
    return this.count;
  }

  private packNumber(id: string, size: number): number {
    this.packs.set(id, size);
    let p = this.packNumbers.get(id);
    if (p === undefined) {
      p = this.packIds.length;
      this.packIds.push(id);
      this.packNumbers.set(id, p);
      this.packCondemned.push(this.condemned.has(id));
    }
    return p;
  }

  /** The entry of the id in hex, or -1. */
  private find(id: string): number {
    if (this.count === 0 || id.length !== 64 || this.scratch.write(id, 'hex') !== 32) return -1;
    return this.lookup(this.scratch, 0);
  }

  private lookup(src: Buffer, at: number): number {
    const head = src.readUInt32LE(at);
    const mask = this.table.length - 1;
    for (let i = head & mask; ; i = (i + 1) & mask) {
      const slot = this.table[i]!;
      if (slot === 0) return -1;
      const e = slot - 1;
      if (this.heads[e] === head && this.ids.compare(src, at, at + 32, e * 32, e * 32 + 32) === 0) return e;
    }
  }

  private addEntry(
    src: Buffer,
    at: number,
    pack: number,
    flags: number,
    offset: number,
    length: number,
    plainLength: number,
  ): void {
    const known = this.count === 0 ? -1 : this.lookup(src, at);
    let e = known;
    if (known >= 0) {
      // Kept unless it lives in a condemned pack and this copy does not.
      if (!this.packCondemned[this.packOf[known]!] || this.packCondemned[pack]) return;
    } else {
      if (this.count === this.capacity) this.grow();
      e = this.count++;
      src.copy(this.ids, e * 32, at, at + 32);
      this.heads[e] = src.readUInt32LE(at);
      this.place(e);
    }
    this.packOf[e] = pack;
    this.offsets[e] = offset;
    this.lengths[e] = length;
    this.plainLengths[e] = plainLength;
    this.flags[e] = flags;
  }

  private place(e: number): void {
    const mask = this.table.length - 1;
    let i = this.heads[e]! & mask;
    while (this.table[i] !== 0) i = (i + 1) & mask;
    this.table[i] = e + 1;
  }

  private grow(): void {
    const capacity = Math.max(INITIAL_CAPACITY, this.capacity * 2);
    const ids = Buffer.alloc(capacity * 32);
    this.ids.copy(ids, 0, 0, this.count * 32);
    this.ids = ids;
    const widen = <T extends Uint32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old.subarray(0, this.count));
      return next;
    };
    this.heads = widen(this.heads, (n) => new Uint32Array(n));
    this.packOf = widen(this.packOf, (n) => new Uint32Array(n));
    this.offsets = widen(this.offsets, (n) => new Uint32Array(n));
    this.lengths = widen(this.lengths, (n) => new Uint32Array(n));
    this.plainLengths = widen(this.plainLengths, (n) => new Uint32Array(n));
    this.flags = widen(this.flags, (n) => new Uint8Array(n));
    this.capacity = capacity;
    this.table = new Int32Array(capacity * 2);
    for (let e = 0; e < this.count; e++) this.place(e);
  }
}

/**
 * A binary index file's content (format 2; JSON files are format 1):
 *   version u8 (2) | pack count u32le | per pack: pack id (32 bytes) | size u64le |
 *   blob count u32le | per blob the 46-byte entry of a pack header (pack-format.ts).
 */
const BINARY_INDEX_VERSION = 2;
/** Bytes of a pack's record before its blob entries. */
const PACK_RECORD = 32 + 8 + 4;

function readSize(bytes: Buffer, at: number): number {
  return bytes.readUInt32LE(at) + bytes.readUInt32LE(at + 4) * 2 ** 32;
}

export function encodeIndexFile(packs: readonly IndexedPack[]): Buffer {
  let size = 5;
  for (const p of packs) size += PACK_RECORD + p.blobs.length * BLOB_ENTRY_SIZE;
  const out = Buffer.alloc(size);
  out[0] = BINARY_INDEX_VERSION;
  out.writeUInt32LE(packs.length, 1);
  let o = 5;
  for (const p of packs) {
    if (p.id.length !== 64 || out.write(p.id, o, 32, 'hex') !== 32) {
      throw new Error(`index: pack id ${p.id} is not 64 hex digits`);
    }
    out.writeUInt32LE(p.size % 2 ** 32, o + 32);
    out.writeUInt32LE(Math.floor(p.size / 2 ** 32), o + 36);
    out.writeUInt32LE(p.blobs.length, o + 40);
    o += PACK_RECORD;
    for (const b of p.blobs) {
      writeBlobEntry(out, o, b);
      o += BLOB_ENTRY_SIZE;
    }
  }
  return out;
}

/** A pack's record in a binary index file: its blobs' entries start at `at`. */
interface PackRecord {
  id: string;
  size: number;
  at: number;
  count: number;
}

/**
 * A binary index file's pack records, once its framing is checked (counts that fit its length
 * exactly, known type and flag bytes); RepositoryCorrupt otherwise.
 */
function packRecords(bytes: Buffer, path: string): PackRecord[] {
  const corrupt = () => new CofferError('RepositoryCorrupt', `${path} is not a valid index`, { path });
  if (bytes.length < 5 || bytes[0] !== BINARY_INDEX_VERSION) throw corrupt();
  const packs = bytes.readUInt32LE(1);
  const records: PackRecord[] = [];
  let o = 5;
  for (let p = 0; p < packs; p++) {
    if (o + PACK_RECORD > bytes.length) throw corrupt();
    const id = bytes.toString('hex', o, o + 32);
    const size = readSize(bytes, o + 32);
    const count = bytes.readUInt32LE(o + 40);
    o += PACK_RECORD;
    if (o + count * BLOB_ENTRY_SIZE > bytes.length) throw corrupt();
    records.push({ id, size, at: o, count });
    for (let i = 0; i < count; i++, o += BLOB_ENTRY_SIZE) {
      if (bytes[o]! > 1 || bytes[o + 1]! > 1) throw corrupt();
    }
  }
  if (o !== bytes.length) throw corrupt();
  return records;
}

/** A binary index file's packs as objects (for prune and check, which work on them). */
function decodeIndexFile(bytes: Buffer, path: string): IndexFileContent {
  const packs = packRecords(bytes, path).map(({ id, size, at, count }) => {
    const blobs: PackedBlob[] = [];
    for (let i = 0, o = at; i < count; i++, o += BLOB_ENTRY_SIZE) blobs.push(readBlobEntry(bytes, o));
    return { id, size, blobs };
  });
  return { version: 1, packs };
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
  const opened = openSealed(key, await backend.load(path), path);
  return opened.kind === 'binary' ? decodeIndexFile(opened.bytes, path) : parseIndexFile(opened.value, path);
}

/**
 * Lists `prefix` and loads every file in it. Prune replaces files (writes the new one, then
 * removes the old), so a file may vanish between list and load: then the directory is listed
 * again, which finds its replacement. Files loaded before they vanished stay in the result.
 */
export async function loadAllFiles<T>(
  backend: Backend,
  prefix: string,
  load: (name: string) => Promise<T>,
  limit = 8,
): Promise<Map<string, T>> {
  const out = new Map<string, T>();
  for (let attempt = 0; ; attempt++) {
    const names = (await backend.list(prefix)).filter((n) => !out.has(n));
    let vanished = false;
    await mapLimit(names, limit, async (name) => {
      try {
        out.set(name, await load(name));
      } catch (err) {
        if (attempt >= 20 || (await backend.stat(`${prefix}/${name}`))) throw err;
        vanished = true;
      }
    });
    if (!vanished) return out;
  }
}

/**
 * Loads every index file present now. Files written later by concurrent backups are simply not
 * seen. `condemned` (loaded before the index, see prune) decides which copy of a blob is preferred.
 */
export async function loadMasterIndex(
  backend: Backend,
  key: Buffer,
  condemned: ReadonlySet<string> = new Set(),
): Promise<MasterIndex> {
  const index = new MasterIndex(condemned);
  // Files are added as they are read (a file read twice, after a prune replaced others, adds
  // nothing new): a binary one straight from its bytes.
  await loadAllFiles(backend, 'index', async (name) => {
    const path = `index/${name}`;
    const opened = openSealed(key, await backend.load(path), path);
    if (opened.kind === 'binary') index.addBinary(opened.bytes, path);
    else for (const p of parseIndexFile(opened.value, path).packs) index.addPack(p);
  });
  return index;
}

export async function writeIndexFile(backend: Backend, key: Buffer, packs: IndexedPack[]): Promise<string> {
  const id = randomBytes(32).toString('hex');
  await backend.save(`index/${id}`, sealBinary(key, encodeIndexFile(packs)));
  return id;
}
