/**
 * The storage backends every engine test runs against, as test/support/catalogs.ts lists the
 * catalog dialects: a local directory, and a bucket on a loopback S3-compatible server
 * (s3rver, started by the test process itself, so it is always available).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';
import { S3Backend } from '../../src/storage/s3/s3-backend.js';
import { startS3Server } from './s3-server.js';

export type BackendKind = 'local' | 's3';

export function backends(): BackendKind[] {
  return ['local', 's3'];
}

export interface TestStorage {
  kind: BackendKind;
  /** A new, empty repository location (a directory or an s3:// URL), unique per call. */
  location(label: string): string;
  /** Opens a location the way coffer would, with this storage's settings. */
  open(location: string): Backend;
  /** Environment a child process needs to open the same locations with openBackend(). */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

const BUCKET = 'coffer-test';

export async function createTestStorage(kind: BackendKind): Promise<TestStorage> {
  let n = 0;
  if (kind === 'local') {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-storage-'));
    return {
      kind,
      location: (label) => join(dir, `${label}-${++n}`),
      open: (location) => new LocalBackend(location),
      env: {},
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const server = await startS3Server([BUCKET]);
  return {
    kind,
    location: (label) => `s3://${BUCKET}/${label}-${++n}`,
    open: (location) => new S3Backend(location, server.settings()),
    env: server.env,
    cleanup: () => server.stop(),
  };
}
