import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** Length of an AES-256 key. The master key and every key-encryption key have this size. */
export const KEY_LENGTH = 32;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
/** Bytes an encrypted object is longer than its plaintext: nonce in front, tag behind. */
export const SEAL_OVERHEAD = NONCE_LENGTH + TAG_LENGTH;

/**
 * Encrypts with AES-256-GCM under a fresh random 96-bit nonce; output is nonce || ciphertext || tag.
 * Random nonces are safe here because one key seals far fewer than 2^32 objects in practice.
 */
export function seal(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const out = Buffer.allocUnsafe(NONCE_LENGTH + plaintext.length + TAG_LENGTH);
  nonce.copy(out, 0);
  let written = NONCE_LENGTH;
  written += cipher.update(plaintext).copy(out, written);
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
