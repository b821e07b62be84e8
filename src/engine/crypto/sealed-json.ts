import zstd from 'zstd-napi';
import { CofferError } from '../../errors/coffer-error.js';
import { open, seal } from './aead.js';

/**
 * Repository metadata files (config, index, snapshots) are sealed with the master key.
 * Plaintext: one flag byte (0 raw JSON, 1 zstd JSON, 2 zstd binary) then the bytes; the flag
 * lets small files skip compression while index files, which are large and repetitive, use it.
 * Index files are binary since format 2 of the index (index/master-index.ts); JSON ones are
 * still read.
 */
const RAW = 0;
const ZSTD = 1;
const ZSTD_BINARY = 2;

export function sealJson(key: Buffer, value: unknown, compress: boolean): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const body = compress ? zstd.compress(json, { compressionLevel: 3 }) : json;
  const plain = Buffer.allocUnsafe(body.length + 1);
  plain[0] = compress ? ZSTD : RAW;
  body.copy(plain, 1);
  return seal(key, plain);
}

export function openJson(key: Buffer, sealed: Uint8Array, path: string): unknown {
  const opened = openSealed(key, sealed, path);
  if (opened.kind !== 'json') {
    throw new CofferError('RepositoryCorrupt', `${path} is not JSON`, { path });
  }
  return opened.value;
}

/** Seals binary metadata, zstd-compressed (openSealed gives it back as `binary`). */
export function sealBinary(key: Buffer, bytes: Uint8Array): Buffer {
  const body = zstd.compress(bytes, { compressionLevel: 3 });
  const plain = Buffer.allocUnsafe(body.length + 1);
  plain[0] = ZSTD_BINARY;
  body.copy(plain, 1);
  return seal(key, plain);
}

export type OpenedFile = { kind: 'json'; value: unknown } | { kind: 'binary'; bytes: Buffer };

/** A sealed metadata file's content: parsed JSON, or the bytes of a binary one. */
export function openSealed(key: Buffer, sealed: Uint8Array, path: string): OpenedFile {
  const plain = open(key, sealed);
  if (!plain || plain.length < 1 || plain[0]! > ZSTD_BINARY) {
    throw new CofferError('RepositoryCorrupt', `${path} fails authentication or is damaged`, { path });
  }
  try {
    const body = plain[0] === RAW ? plain.subarray(1) : zstd.decompress(plain.subarray(1));
    if (plain[0] === ZSTD_BINARY) return { kind: 'binary', bytes: body };
    return { kind: 'json', value: JSON.parse(body.toString('utf8')) as unknown };
  } catch (err) {
    throw new CofferError('RepositoryCorrupt', `${path} does not parse`, { path }, { cause: err });
  }
}
