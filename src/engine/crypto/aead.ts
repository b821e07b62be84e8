import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { threadRecycler } from '../buffer-recycler.js';

/** Length of an AES-256 key. The master key and every key-encryption key have this size. */
export const KEY_LENGTH = 32;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
/** Bytes an encrypted object is longer than its plaintext: nonce in front, tag behind. */
export const SEAL_OVERHEAD = NONCE_LENGTH + TAG_LENGTH;

/**
 * Random bytes for nonces, drawn from the CSPRNG in batches: one call per blob cost about 18 µs,
 * a noticeable share of backing up many small files. Each nonce is used once and never reused.
 */
const nonceBatch = Buffer.allocUnsafeSlow(NONCE_LENGTH * 1024);
let nonceNext = nonceBatch.length;

function nextNonce(): Buffer {
  if (nonceNext === nonceBatch.length) {
    randomFillSync(nonceBatch);
    nonceNext = 0;
  }
  const nonce = nonceBatch.subarray(nonceNext, nonceNext + NONCE_LENGTH);
  nonceNext += NONCE_LENGTH;
  return nonce;
}

/** Bytes encrypted per cipher update in `seal`: below the allocator's mmap threshold. */
const SEAL_SLICE = 64 * 1024;

/**
 * Encrypts with AES-256-GCM under a fresh random 96-bit nonce; output is nonce || ciphertext || tag.
 * Random nonces are safe here because one key seals far fewer than 2^32 objects in practice.
 * The output is never in Node's shared pool, so it can be handed to another thread without a
 * copy; from 64 KiB up it is a view of a reusable buffer (buffer-recycler.ts).
 */
export function seal(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const nonce = nextNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const out = threadRecycler.take(NONCE_LENGTH + plaintext.length + TAG_LENGTH);
  nonce.copy(out, 0);
  let written = NONCE_LENGTH;
  // In slices: update() returns a fresh buffer as large as its input, and a chunk-sized one per
  // blob would be mapped and unmapped by the allocator every time (app/process-tuning.ts).
  for (let at = 0; at < plaintext.length; at += SEAL_SLICE) {
    written += cipher.update(plaintext.subarray(at, at + SEAL_SLICE)).copy(out, written);
  }
  written += cipher.final().copy(out, written);
  cipher.getAuthTag().copy(out, written);
  return out;
}

/** Decrypts what `seal` produced; returns null (never throws) when authentication fails. */
export function open(key: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  const nonce = sealed.subarray(0, NONCE_LENGTH);
  const tag = sealed.subarray(sealed.length - TAG_LENGTH);
  const body = sealed.subarray(NONCE_LENGTH, sealed.length - TAG_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAuthTag(tag);
  try {
    const head = decipher.update(body);
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    return null;
  }
}
