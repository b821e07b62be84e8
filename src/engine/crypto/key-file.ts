import { randomBytes, scrypt } from 'node:crypto';
import { hostname } from 'node:os';
import { CofferError } from '../../errors/coffer-error.js';
import { KEY_LENGTH, open, seal } from './aead.js';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** restic's and scrypt's paper's interactive-login cost: ~100 ms and 32 MiB per attempt. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };

/** The JSON stored, unencrypted, at keys/<id>. */
export interface KeyFile {
  version: 1;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  /** The master key sealed with AES-256-GCM under the scrypt-derived key, base64. */
  wrappedKey: string;
  created: string;
  hostname: string;
}

function deriveKey(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  // Node's default maxmem (32 MiB) is exactly what N=2^15,r=8 needs, which it rejects; allow headroom.
  const maxmem = 256 * params.N * params.r + 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LENGTH, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function wrapMasterKey(
  masterKey: Buffer,
  password: string,
  params: ScryptParams,
): Promise<KeyFile> {
  if (!Number.isInteger(Math.log2(params.N)) || params.N < 2 || params.r < 1 || params.p < 1) {
    throw new CofferError('InvalidRequest', 'scrypt N must be a power of two above 1, r and p at least 1', {
      scrypt: params,
    });
  }
  const salt = randomBytes(32);
  const kek = await deriveKey(password, salt, params);
  return {
    version: 1,
    kdf: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    salt: salt.toString('base64'),
    wrappedKey: seal(kek, masterKey).toString('base64'),
    created: new Date().toISOString(),
    hostname: hostname(),
  };
}

export function parseKeyFile(bytes: Buffer, path: string): KeyFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CofferError(
      'RepositoryCorrupt',
      `key file ${path} is not valid JSON`,
      { path },
      { cause: err },
    );
  }
  const k = parsed as Partial<KeyFile> | null;
  if (
    !k ||
    k.kdf !== 'scrypt' ||
    typeof k.N !== 'number' ||
    typeof k.r !== 'number' ||
    typeof k.p !== 'number' ||
    typeof k.salt !== 'string' ||
    typeof k.wrappedKey !== 'string'
  ) {
    throw new CofferError('RepositoryCorrupt', `key file ${path} is malformed`, { path });
  }
  return k as KeyFile;
}

/** Returns the master key, or null when the password does not open this key file. */
export async function unwrapMasterKey(keyFile: KeyFile, password: string): Promise<Buffer | null> {
  const kek = await deriveKey(password, Buffer.from(keyFile.salt, 'base64'), keyFile);
  const key = open(kek, Buffer.from(keyFile.wrappedKey, 'base64'));
  return key && key.length === KEY_LENGTH ? key : null;
}
