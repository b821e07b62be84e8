import { CofferError } from '../errors/coffer-error.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local/local-backend.js';

/**
 * Picks the provider from the location's scheme. Plain paths (and file://) are local directories;
 * other schemes get their own provider here as they are written.
 */
export function openBackend(location: string): Backend {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1]?.toLowerCase();
  if (scheme === undefined) return new LocalBackend(location);
  if (scheme === 'file') return new LocalBackend(decodeURIComponent(new URL(location).pathname));
  if (scheme === 's3')
    throw new CofferError('InvalidRequest', 'S3 storage is not available yet', { location });
  throw new CofferError('InvalidRequest', `unsupported storage location scheme ${scheme}://`, { location });
}
