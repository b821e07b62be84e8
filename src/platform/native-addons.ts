/**
 * Loads coffer's own Node-API addons (native/), which `npm ci` builds. Each is optional: a
 * caller gets null when its addon was not built (no compiler at install time) and falls back.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from './install-paths.js';

const require = createRequire(import.meta.url);

/** native/<dir>/build/Release/<file>.node, or null when it is not built or fails to load. */
export function loadNativeAddon<T>(dir: string, file: string): T | null {
  try {
    return require(join(packageRoot(), 'native', dir, 'build', 'Release', `${file}.node`)) as T;
  } catch {
    return null;
  }
}
