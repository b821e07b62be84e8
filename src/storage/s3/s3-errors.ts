import { CofferError } from '../../errors/coffer-error.js';

/** The fields an AWS SDK v3 service or transport error carries that decide its meaning. */
interface SdkErrorFacts {
  name: string;
  status: number | undefined;
}

function facts(err: unknown): SdkErrorFacts {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    name?: unknown;
    Code?: unknown;
    code?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  // Service errors carry the S3 error code as name (and Code); transport errors a Node errno code.
  const name = [e.Code, e.code, e.name].find(
    (v): v is string => typeof v === 'string' && v !== 'Error' && v !== 'AggregateError',
  );
  const status = e.$metadata?.httpStatusCode;
  return { name: name ?? '', status: typeof status === 'number' ? status : undefined };
}

/** Out of space or over a quota: MinIO (507 XMinioStorageFull), Ceph RGW (403 QuotaExceeded), others. */
const FULL = new Set([
  'EntityTooLarge',
  'QuotaExceeded',
  'InsufficientStorage',
  'XMinioStorageFull',
  'StorageFull',
  'NotEnoughSpace',
]);
const ACCESS = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
  'InvalidBucketName',
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
]);
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'TimeoutError',
  'RequestTimeout',
  'NetworkingError',
  'ServiceUnavailable',
  'SlowDown',
  'InternalError',
]);

/** Whether the error says the object (not the bucket) does not exist. */
export function isNotFound(err: unknown): boolean {
  const { name, status } = facts(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** Whether a ranged read started past the end of the object. */
export function isInvalidRange(err: unknown): boolean {
  const { name, status } = facts(err);
  return name === 'InvalidRange' || status === 416;
}

/**
 * Maps what an S3-compatible server or the network answered to the error catalog, so an operator
 * gets the article that helps: StorageFull for quota and space errors, StorageUnavailable for
 * credentials, permissions, a missing bucket or an unreachable endpoint (after the SDK's
 * retries). Anything else is returned unchanged.
 */
export function mapS3Error(err: unknown, location: string, path: string): unknown {
  if (err instanceof CofferError) return err;
  const { name, status } = facts(err);
  const context = { location, path, s3Error: name || undefined, httpStatus: status };
  const detail = (err as { message?: unknown } | null)?.message;
  const said = typeof detail === 'string' && detail !== '' ? `: ${detail}` : '';
  if (FULL.has(name) || status === 507) {
    return new CofferError(
      'StorageFull',
      `the S3 storage at ${location} refused ${path} as over quota or out of space (${name || status})${said}`,
      context,
      { cause: err },
    );
  }
  if (name === 'NoSuchBucket') {
    return new CofferError(
      'StorageUnavailable',
      `the bucket of ${location} does not exist${said}`,
      { ...context, reason: 'no-such-bucket' },
      { cause: err },
    );
  }
  if (ACCESS.has(name) || status === 401 || status === 403) {
    return new CofferError(
      'StorageUnavailable',
      `the S3 storage at ${location} refused access to ${path} (${name || status})${said}`,
      { ...context, reason: 'access-denied' },
      { cause: err },
    );
  }
  if (UNREACHABLE.has(name) || (status !== undefined && status >= 500)) {
    return new CofferError(
      'StorageUnavailable',
      `the S3 storage at ${location} could not be reached for ${path} (${name || status})${said}`,
      { ...context, reason: 'unreachable' },
      { cause: err },
    );
  }
  return err;
}
