/**
 * An S3-compatible server for tests: s3rver (an npm devDependency, files kept in a temporary
 * directory) on 127.0.0.1 at a free port, in a child process, stopped by `stop()` or when this
 * process exits. Why s3rver: docs/storage-s3.md#tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { S3Settings } from '../../src/storage/s3/s3-settings.js';

const CHILD = fileURLToPath(new URL('./s3-server-child.js', import.meta.url));

/** s3rver accepts only this key pair (any other is refused as InvalidAccessKeyId). */
export const S3RVER_KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3TestServer {
  endpoint: string;
  /** The environment a coffer process needs to use this server (credentials, endpoint, region). */
  env: Record<string, string>;
  /** The same facts as S3Backend settings, with few retries so failures surface fast. */
  settings(overrides?: Partial<S3Settings>): S3Settings;
  /**
   * Every request the server has received, as "METHOD /bucket/key?query", up to and including
   * those of every call that has returned (the log reaches this process through a pipe, so it
   * first sends a marker request and waits until the marker's line arrives).
   */
  requests(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startS3Server(buckets: string[]): Promise<S3TestServer> {
  const directory = await mkdtemp(join(tmpdir(), 'coffer-s3rver-'));
  const child: ChildProcess = spawn(
    process.execPath,
    ['--openssl-legacy-provider', CHILD, directory, ...buckets],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const log: string[] = [];
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code} before listening`)));
    lines.on('line', (line) => {
      if (line.startsWith('request ')) log.push(line.slice('request '.length));
      else if (line.startsWith('listening ')) resolve(Number(line.slice('listening '.length)));
    });
  });
  child.removeAllListeners('exit');
  const endpoint = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  let markers = 0;
  return {
    endpoint,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: S3RVER_KEY.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_KEY.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_MAX_ATTEMPTS: '2',
    },
    settings: (overrides = {}) => ({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { ...S3RVER_KEY },
      maxAttempts: 2,
      partSize: 5 * 1024 * 1024,
      partConcurrency: 4,
      ...overrides,
    }),
    requests: async () => {
      const marker = `/coffer-test-log-marker-${++markers}`;
      await fetch(`${endpoint}${marker}`).then((r) => r.arrayBuffer());
      await new Promise<void>((resolve) => {
        const seen = (): boolean => log.some((l) => l.endsWith(` ${marker}`));
        if (seen()) return resolve();
        const onLine = (): void => {
          if (seen()) {
            lines.off('line', onLine);
            resolve();
          }
        };
        lines.on('line', onLine);
      });
      return log.filter((l) => !l.includes('/coffer-test-log-marker-'));
    },
    stop: () =>
      (stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGTERM');
          await exited;
        }
        await rm(directory, { recursive: true, force: true });
      })()),
  };
}
