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

let derivations = 0;

/** Key derivations this process has started (tests check that a derivation ahead was used). */
export function derivationsStarted(): number {
  return derivations;
}

function deriveKey(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  derivations++;
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

/** What a key-encryption key is derived from, besides the password: a key file's salt and cost. */
export interface KdfParams extends ScryptParams {
  /** Base64, as in the key file. */
  salt: string;
}

/** The salt and cost of a key file (stored unencrypted in it). */
export function kdfOf(keyFile: KeyFile): KdfParams {
  return { salt: keyFile.salt, N: keyFile.N, r: keyFile.r, p: keyFile.p };
}

/**
 * Costs a derivation started ahead may have at most: 256 MiB of scrypt memory (128·N·r bytes; the
 * default cost takes 32 MiB) and p up to 4. The parameters come from a local hint file that
 * nothing authenticates, and a command that ends without the derivation (a refused backup)
 * still waits for it to finish before it exits; a vault of a higher cost just derives as usual.
 */
const MAX_AHEAD_MEMORY = 256 * 1024 * 1024;
const MAX_AHEAD_P = 4;

/** Derivations started by deriveKeyAhead and not used yet, by salt and cost. */
const derivedAhead = new Map<string, { password: string; kek: Promise<Buffer> }>();

function aheadKey(k: KdfParams): string {
  return `${k.salt}:${k.N}:${k.r}:${k.p}`;
}

/**
 * Starts deriving the key-encryption key for `password` and `kdf` now, on Node's thread pool;
 * the next unwrapMasterKey of a key file with that salt and cost, for that same password, takes
 * it instead of deriving it again. Why: the derivation costs a tenth of a second of one core by
 * design, and a short command can start it while it still loads its own code
 * (app/key-prefetch.ts). Anything else (another password, another key file) derives as always,
 * so a guess that was wrong costs only the wasted derivation. Unusable parameters are ignored.
 */
export function deriveKeyAhead(kdf: KdfParams, password: string): void {
  const { N, r, p } = kdf;
  const sane =
    Number.isInteger(N) &&
    Number.isInteger(r) &&
    Number.isInteger(p) &&
    N >= 2 &&
    (N & (N - 1)) === 0 &&
    r >= 1 &&
    128 * N * r <= MAX_AHEAD_MEMORY &&
    p >= 1 &&
    p <= MAX_AHEAD_P &&
    typeof kdf.salt === 'string' &&
    /^[A-Za-z0-9+/]+={0,2}$/.test(kdf.salt);
  if (!sane || password === '') return;
  const kek = deriveKey(password, Buffer.from(kdf.salt, 'base64'), kdf);
  // Awaited only if a key file asks for it; a failure then means deriving again, never a crash.
  kek.catch(() => undefined);
  derivedAhead.set(aheadKey(kdf), { password, kek });
}

/** Returns the master key, or null when the password does not open this key file. */
export async function unwrapMasterKey(keyFile: KeyFile, password: string): Promise<Buffer | null> {
  const salt = Buffer.from(keyFile.salt, 'base64');
  const id = aheadKey(kdfOf(keyFile));
  const ahead = derivedAhead.get(id);
  let kek: Buffer;
  if (ahead && ahead.password === password) {
    derivedAhead.delete(id);
    kek = await ahead.kek.catch(() => deriveKey(password, salt, keyFile));
  } else {
    kek = await deriveKey(password, salt, keyFile);
  }
  const key = open(kek, Buffer.from(keyFile.wrappedKey, 'base64'));
  return key && key.length === KEY_LENGTH ? key : null;
}
