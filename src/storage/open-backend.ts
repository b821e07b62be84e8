import { CofferError } from '../errors/coffer-error.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local/local-backend.js';
import { S3Backend } from './s3/s3-backend.js';
import { s3SettingsFromEnv } from './s3/s3-settings.js';

/**
 * Picks the provider from the location's scheme. Plain paths (and file://) are local directories;
 * s3:// is a bucket and key prefix on AWS or any S3-compatible server, reached as the environment
 * says (docs/storage-s3.md).
 */
export function openBackend(location: string, env: NodeJS.ProcessEnv = process.env): Backend {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1]?.toLowerCase();
  if (scheme === undefined) return new LocalBackend(location);
  if (scheme === 'file') return new LocalBackend(decodeURIComponent(new URL(location).pathname));
  if (scheme === 's3') return new S3Backend(location, s3SettingsFromEnv(env));
  throw new CofferError('InvalidRequest', `unsupported storage location scheme ${scheme}://`, { location });
}
