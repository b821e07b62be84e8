import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { threadRecycler } from '../buffer-recycler.js';
import { type NativeAesGcm, nativeAesGcm } from './native-aes-gcm.js';

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

/** Bytes encrypted per cipher update by node:crypto: below the allocator's mmap threshold. */
const SEAL_SLICE = 64 * 1024;

/**
 * AES-256-GCM through node:crypto, behind the addon's interface: the fallback when the addon is
 * not built, and the reference the addon is tested against. update() returns a fresh buffer as
 * large as its input, so it runs in slices (a chunk-sized one per blob would be mapped and
 * unmapped by the allocator every time: app/process-tuning.ts).
 */
export const nodeCryptoAesGcm: NativeAesGcm = {
  seal(key, nonce, plaintext, out) {
    if (out.length !== plaintext.length + TAG_LENGTH)
      throw new RangeError('out must be plaintext.length + 16 bytes');
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    let written = 0;
    for (let at = 0; at < plaintext.length; at += SEAL_SLICE) {
      const part = cipher.update(plaintext.subarray(at, at + SEAL_SLICE));
      out.set(part, written);
      written += part.length;
    }
    const tail = cipher.final();
    out.set(tail, written);
    out.set(cipher.getAuthTag(), written + tail.length);
  },
  open(key, nonce, ciphertext, tag, out) {
    if (out.length < ciphertext.length) throw new RangeError('out must be as long as the ciphertext');
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAuthTag(tag);
    try {
      let written = 0;
      for (let at = 0; at < ciphertext.length; at += SEAL_SLICE) {
        const part = decipher.update(ciphertext.subarray(at, at + SEAL_SLICE));
        out.set(part, written);
        written += part.length;
      }
      out.set(decipher.final(), written);
      return true;
    } catch {
      return false;
    }
  },
};

/**
 * The cipher this thread uses: the addon (native/aes-gcm), which writes straight into the
 * output buffer, or node:crypto. Why the addon: node:crypto's outputs were short-lived buffers
 * of 64 KiB, one per slice of every chunk, that waited for the engine threads' collector in the
 * C allocator's arenas (30-45 MiB at the peak of a large first backup), plus a copy of each.
 */
const cipher: NativeAesGcm = nativeAesGcm() ?? nodeCryptoAesGcm;

/** Which implementation `seal` and `open` use on this thread (for diagnostics and tests). */
export const cipherImplementation: 'native' | 'node:crypto' =
  cipher === nodeCryptoAesGcm ? 'node:crypto' : 'native';

/**
 * Encrypts with AES-256-GCM under a fresh random 96-bit nonce; output is nonce || ciphertext || tag.
 * Random nonces are safe here because one key seals far fewer than 2^32 objects in practice.
 * The output is never in Node's shared pool, so it can be handed to another thread without a
 * copy; from 64 KiB up it is a view of a reusable buffer (buffer-recycler.ts).
 */
export function seal(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const nonce = nextNonce();
  const out = threadRecycler.take(NONCE_LENGTH + plaintext.length + TAG_LENGTH);
  nonce.copy(out, 0);
  cipher.seal(key, nonce, plaintext, out.subarray(NONCE_LENGTH));
  return out;
}

/** Decrypts what `seal` produced into a new buffer; returns null (never throws) when authentication fails. */
export function open(key: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  return openInto(key, sealed, Buffer.allocUnsafeSlow(sealed.length - SEAL_OVERHEAD));
}

/**
 * Decrypts what `seal` produced into `out` (at least `sealed.length - SEAL_OVERHEAD` bytes, not
 * overlapping `sealed`); returns the view of `out` that holds the plaintext, or null when
 * authentication fails (then `out` holds nothing to use).
 */
export function openInto(key: Uint8Array, sealed: Uint8Array, out: Buffer): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  const length = sealed.length - SEAL_OVERHEAD;
  const nonce = sealed.subarray(0, NONCE_LENGTH);
  const tag = sealed.subarray(sealed.length - TAG_LENGTH);
  const body = sealed.subarray(NONCE_LENGTH, sealed.length - TAG_LENGTH);
  return cipher.open(key, nonce, body, tag, out) ? out.subarray(0, length) : null;
}
