import { CofferError } from '../../errors/coffer-error.js';

/**
 * How the S3 backend reaches its server. Resolved once from the environment (the usual AWS
 * variables plus a few COFFER_S3_* knobs, documented in docs/storage-s3.md) so tests and
 * child processes can pass the same facts explicitly.
 */
export interface S3Settings {
  /** Custom endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000; undefined for AWS. */
  endpoint: string | undefined;
  region: string;
  /** Path-style URLs (endpoint/bucket/key) instead of virtual hosts (bucket.endpoint/key). */
  forcePathStyle: boolean;
  /** Static credentials; undefined lets the SDK's default provider chain find them (profiles, IMDS, SSO). */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  /** Attempts per request, first try included, with the SDK's exponential backoff and jitter between. */
  maxAttempts: number;
  /** Objects larger than this go up as a multipart upload in parts of this size. */
  partSize: number;
  /** Parts of one object uploaded at once. */
  partConcurrency: number;
}

const MIB = 1024 * 1024;
/** S3 refuses parts smaller than 5 MiB (except the last). */
export const MIN_PART_SIZE = 5 * MIB;
export const DEFAULT_PART_SIZE = 8 * MIB;
export const DEFAULT_MAX_ATTEMPTS = 5;

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function flag(name: string, value: string | undefined): boolean | undefined {
  const v = nonEmpty(value)?.toLowerCase();
  if (v === undefined) return undefined;
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new CofferError('InvalidRequest', `${name} must be true or false, not ${JSON.stringify(value)}`, {
    field: name,
  });
}

function positiveInt(name: string, value: string | undefined, min: number): number | undefined {
  const v = nonEmpty(value);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new CofferError('InvalidRequest', `${name} must be an integer of at least ${min}, not ${v}`, {
      field: name,
    });
  }
  return n;
}

export function s3SettingsFromEnv(env: NodeJS.ProcessEnv = process.env): S3Settings {
  const endpoint = nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  const accessKeyId = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  const sessionToken = nonEmpty(env.AWS_SESSION_TOKEN);
  const partMib = positiveInt('COFFER_S3_PART_SIZE_MIB', env.COFFER_S3_PART_SIZE_MIB, MIN_PART_SIZE / MIB);
  return {
    endpoint,
    // The SDK itself reads only AWS_REGION; AWS_DEFAULT_REGION is what the AWS CLI and many
    // S3-compatible providers' guides set. Most S3-compatible servers accept any region.
    region: nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1',
    // Self-hosted servers rarely have wildcard DNS for bucket subdomains, so a custom endpoint
    // implies path-style unless the operator says otherwise.
    forcePathStyle:
      flag('COFFER_S3_FORCE_PATH_STYLE', env.COFFER_S3_FORCE_PATH_STYLE) ?? endpoint !== undefined,
    credentials:
      accessKeyId !== undefined && secretAccessKey !== undefined
        ? { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) }
        : undefined,
    maxAttempts: positiveInt('AWS_MAX_ATTEMPTS', env.AWS_MAX_ATTEMPTS, 1) ?? DEFAULT_MAX_ATTEMPTS,
    partSize: partMib === undefined ? DEFAULT_PART_SIZE : partMib * MIB,
    partConcurrency: positiveInt('COFFER_S3_UPLOAD_CONCURRENCY', env.COFFER_S3_UPLOAD_CONCURRENCY, 1) ?? 4,
  };
}

/** `s3://bucket/some/prefix` → bucket and prefix (no leading or trailing '/'; '' for the bucket root). */
export function parseS3Location(location: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/?#]+)(\/[^?#]*)?$/i.exec(location.trim());
  const bucket = m?.[1];
  // Bucket naming rules (lower case, digits, '.', '-'; 3..63) plus the '_' some servers allow.
  if (bucket === undefined || !/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new CofferError(
      'InvalidRequest',
      `invalid S3 location ${JSON.stringify(location)}: expected s3://bucket/prefix with a valid bucket name`,
      { field: 'path', location },
    );
  }
  const parts = (m?.[2] ?? '').split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '.' || p === '..' || p.includes('\0'))) {
    throw new CofferError('InvalidRequest', `invalid S3 prefix in ${JSON.stringify(location)}`, {
      field: 'path',
      location,
    });
  }
  return { bucket, prefix: parts.join('/') };
}
