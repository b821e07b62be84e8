import type { S3Client } from '@aws-sdk/client-s3';
import { CofferError } from '../../errors/coffer-error.js';
import type { Backend, ObjectUpload } from '../backend.js';
import { BufferedUpload } from '../buffered-upload.js';
import { isInvalidRange, isNotFound, mapS3Error } from './s3-errors.js';
import { parseS3Location, s3SettingsFromEnv, type S3Settings } from './s3-settings.js';

type S3Sdk = typeof import('@aws-sdk/client-s3');
type StorageSdk = typeof import('@aws-sdk/lib-storage');

interface Connection {
  sdk: S3Sdk;
  Upload: StorageSdk['Upload'];
  client: S3Client;
}

/**
 * One client per distinct settings for the whole process: every job that opens the vault again
 * reuses its keep-alive connections (idle sockets do not keep the process alive) and the
 * credential provider's cache, instead of leaving a client behind per open.
 */
const connections = new Map<string, Promise<Connection>>();

function connectionFor(s: S3Settings): Promise<Connection> {
  const key = JSON.stringify(s);
  let connection = connections.get(key);
  if (connection === undefined) {
    connection = (async () => {
      // The SDK warns once per process that its 2027 releases will need Node 22; the lock file
      // pins this release, and the warning would otherwise end up in every command's output.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const [sdk, storage] = await Promise.all([
        import('@aws-sdk/client-s3'),
        import('@aws-sdk/lib-storage'),
      ]);
      const client = new sdk.S3Client({
        region: s.region,
        forcePathStyle: s.forcePathStyle,
        maxAttempts: s.maxAttempts,
        retryMode: 'standard',
        requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
        ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint }),
        ...(s.credentials === undefined ? {} : { credentials: s.credentials }),
      });
      return { sdk, Upload: storage.Upload, client };
    })();
    connections.set(key, connection);
    connection.catch(() => connections.delete(key));
  }
  return connection;
}

/**
 * A repository under a prefix of an S3 bucket (AWS or any S3-compatible server), through the
 * official AWS SDK v3. Every repository object is written once under a unique name, so S3's
 * per-object atomic PUT (and atomic multipart completion) gives the Backend's whole-object
 * guarantee without a temporary area. See docs/storage-s3.md.
 *
 * The SDK is loaded on first use, so commands that never touch an S3 vault do not pay its start-up.
 */
export class S3Backend implements Backend {
  readonly location: string;
  readonly bucket: string;
  /** Key prefix of the repository root, without trailing '/'; '' for the bucket root. */
  readonly prefix: string;
  private readonly settings: S3Settings;

  constructor(location: string, settings: S3Settings = s3SettingsFromEnv()) {
    const { bucket, prefix } = parseS3Location(location);
    this.bucket = bucket;
    this.prefix = prefix;
    this.location = prefix === '' ? `s3://${bucket}` : `s3://${bucket}/${prefix}`;
    this.settings = settings;
  }

  private connect(): Promise<Connection> {
    return connectionFor(this.settings);
  }

  /** Validates a repository path like the local backend does and turns it into parts. */
  private parts(path: string): string[] {
    const parts = path.split('/').filter((p) => p !== '');
    if (parts.some((p) => p === '.' || p === '..' || p.includes('\0')) || path.startsWith('/')) {
      throw new CofferError('InvalidRequest', `invalid storage path ${JSON.stringify(path)}`, { path });
    }
    return parts;
  }

  private key(path: string): string {
    const parts = this.parts(path);
    if (parts.length === 0) {
      throw new CofferError('InvalidRequest', `invalid storage path ${JSON.stringify(path)}`, { path });
    }
    return [this.prefix, ...parts].filter((p) => p !== '').join('/');
  }

  async save(path: string, data: Uint8Array): Promise<void> {
    const key = this.key(path);
    const { sdk, client, Upload } = await this.connect();
    // Up to partSize bytes this is one PutObject; above it a multipart upload whose parts go up
    // in parallel. The object appears only when the upload completes.
    const upload = new Upload({
      client,
      params: { Bucket: this.bucket, Key: key, Body: data, ContentType: 'application/octet-stream' },
      partSize: this.settings.partSize,
      queueSize: this.settings.partConcurrency,
      // Aborted here rather than by the Upload, which would report a failed abort instead of
      // the error that made the upload fail.
      leavePartsOnError: true,
    });
    try {
      await upload.done();
    } catch (err) {
      if (upload.uploadId !== undefined) {
        // Best effort: frees the stored parts. If it fails too, the incomplete upload stays
        // invisible and a bucket lifecycle rule removes it (docs/storage-s3.md).
        await client
          .send(
            new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: upload.uploadId }),
          )
          .catch(() => undefined);
      }
      throw mapS3Error(err, this.location, path);
    }
  }

  /** Gathered in memory and stored at commit: an S3 object cannot be written in place. */
  async startUpload(): Promise<ObjectUpload> {
    return new BufferedUpload((path, data) => this.save(path, data));
  }

  async load(path: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const key = this.key(path);
    if (range !== undefined && range.length === 0) {
      // An empty range cannot be expressed as an HTTP Range; the object must still exist.
      if ((await this.stat(path)) === null) throw this.missing(path);
      return Buffer.alloc(0);
    }
    const { sdk, client } = await this.connect();
    let bytes: Uint8Array;
    try {
      const out = await client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          ...(range === undefined
            ? {}
            : { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` }),
        }),
      );
      if (out.Body === undefined) throw this.missing(path);
      bytes = await out.Body.transformToByteArray();
    } catch (err) {
      if (isNotFound(err)) throw this.missing(path, err);
      if (range !== undefined && isInvalidRange(err)) throw this.short(path, range, 0);
      throw mapS3Error(err, this.location, path);
    }
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (range !== undefined && buf.length < range.length) throw this.short(path, range, buf.length);
    return buf;
  }

  async stat(path: string): Promise<{ size: number } | null> {
    const key = this.key(path);
    const { sdk, client } = await this.connect();
    try {
      const out = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw mapS3Error(err, this.location, path);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const parts = [this.prefix, ...this.parts(prefix)].filter((p) => p !== '');
    const keyPrefix = parts.length === 0 ? '' : `${parts.join('/')}/`;
    const { sdk, client } = await this.connect();
    const out: string[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: keyPrefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const object of page.Contents ?? []) {
          const name = object.Key?.slice(keyPrefix.length) ?? '';
          // Keys ending in '/' are "folder" markers some consoles create; they hold no object.
          if (name !== '' && !name.endsWith('/')) out.push(name);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (err) {
      throw mapS3Error(err, this.location, prefix);
    }
    return out.sort();
  }

  async remove(path: string): Promise<void> {
    const key = this.key(path);
    const { sdk, client } = await this.connect();
    try {
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      // S3 answers 204 for a missing key; some compatible servers answer 404 instead.
      if (isNotFound(err)) return;
      throw mapS3Error(err, this.location, path);
    }
  }

  private missing(path: string, cause?: unknown): CofferError {
    return new CofferError(
      'RepositoryCorrupt',
      `${path} is missing from ${this.location}`,
      { path, location: this.location },
      cause === undefined ? undefined : { cause },
    );
  }

  private short(path: string, range: { offset: number; length: number }, got: number): CofferError {
    return new CofferError('RepositoryCorrupt', `${path} is shorter than expected`, {
      path,
      location: this.location,
      offset: range.offset,
      length: range.length,
      got,
    });
  }
}
