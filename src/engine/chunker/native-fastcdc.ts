/**
 * The gear-hash addon (native/fastcdc): FastCDC's inner loop in C, about four times the speed of
 * the JavaScript loop in fastcdc.ts, which it matches byte for byte. Loaded once per thread; when
 * it is not built, or COFFER_NATIVE_CHUNKER=off, the chunker runs its JavaScript loop and finds
 * the very same cut points.
 */
import { loadNativeAddon } from '../../platform/native-addons.js';

export interface NativeFastCdc {
  /**
   * Rolls the gear hash `state[0]` over `buf[from..stop)`: the index just past the first byte
   * after which `(hash & mask) === 0`, or -1 with `state[0]` the hash after the last byte.
   */
  scan(
    buf: Uint8Array,
    from: number,
    stop: number,
    mask: number,
    gear: Int32Array,
    state: Int32Array,
  ): number;
}

let addon: NativeFastCdc | null | undefined;

/** The addon, or null when it is not built or switched off. */
export function nativeFastCdc(): NativeFastCdc | null {
  if (addon !== undefined) return addon;
  if (process.env.COFFER_NATIVE_CHUNKER === 'off') return (addon = null);
  return (addon = loadNativeAddon<NativeFastCdc>('fastcdc', 'fastcdc'));
}
