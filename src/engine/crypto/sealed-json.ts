import zstd from 'zstd-napi';
import { CofferError } from '../../errors/coffer-error.js';
import { open, seal } from './aead.js';

/**
 * Repository metadata files (config, index, snapshots) are JSON sealed with the master key.
 * Plaintext: one flag byte (0 raw, 1 zstd) then the JSON bytes; the flag lets small files skip
 * compression while index files, which are large and repetitive, use it.
 */
const RAW = 0;
const ZSTD = 1;

export function sealJson(key: Buffer, value: unknown, compress: boolean): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const body = compress ? zstd.compress(json, { compressionLevel: 3 }) : json;
  const plain = Buffer.allocUnsafe(body.length + 1);
  plain[0] = compress ? ZSTD : RAW;
  body.copy(plain, 1);
  return seal(key, plain);
}

export function openJson(key: Buffer, sealed: Uint8Array, path: string): unknown {
  const plain = open(key, sealed);
  if (!plain || plain.length < 1 || (plain[0] !== RAW && plain[0] !== ZSTD)) {
    throw new CofferError('RepositoryCorrupt', `${path} fails authentication or is damaged`, { path });
  }
  try {
    const json = plain[0] === ZSTD ? zstd.decompress(plain.subarray(1)) : plain.subarray(1);
    return JSON.parse(json.toString('utf8')) as unknown;
  } catch (err) {
    throw new CofferError('RepositoryCorrupt', `${path} does not parse`, { path }, { cause: err });
  }
}
