/**
 * The AES-256-GCM addon (native/aes-gcm): OpenSSL's cipher, as node:crypto runs it, writing into
 * buffers the caller owns instead of returning a fresh one per call (aead.ts says why). Loaded
 * once per thread; when it is not built, or COFFER_NATIVE_CIPHER=off, aead.ts uses node:crypto
 * and seals and opens the very same bytes.
 */
import { loadNativeAddon } from '../../platform/native-addons.js';

export interface NativeAesGcm {
  /** Writes ciphertext then the 16-byte tag into `out` (exactly plaintext.length + 16 bytes). */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /** True when `tag` authenticates; the plaintext is then the first ciphertext.length bytes of `out`. */
  open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
}

let addon: NativeAesGcm | null | undefined;

/** The addon, or null when it is not built or switched off. */
export function nativeAesGcm(): NativeAesGcm | null {
  if (addon !== undefined) return addon;
  if (process.env.COFFER_NATIVE_CIPHER === 'off') return (addon = null);
  return (addon = loadNativeAddon<NativeAesGcm>('aes-gcm', 'aes_gcm'));
}
