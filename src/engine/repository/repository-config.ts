import { randomBytes } from 'node:crypto';
import { CofferError } from '../../errors/coffer-error.js';
import { type ChunkerParams, DEFAULT_CHUNKER_PARAMS, validateChunkerParams } from '../chunker/fastcdc.js';
import { DEFAULT_PACK_SIZE } from '../pack/pack-writer.js';

export const FORMAT_VERSION = 1;

/** The JSON sealed at `config`. Its presence is what makes a directory a repository. */
export interface RepositoryConfig {
  version: number;
  id: string;
  chunker: ChunkerParams & { gearSeed: string };
  packSize: number;
  /** Absent in vaults made before the setting existed: they compress at the default level. */
  compression?: { level: number };
}

/** zstd level 3, zstd's own default: the vault-size/CPU balance restic's `auto` also aims for. */
export const DEFAULT_COMPRESSION_LEVEL = 3;
/** Highest zstd level coffer accepts; above 19 zstd needs far more memory for little gain. */
export const MAX_COMPRESSION_LEVEL = 19;

/** Named levels for `coffer vault create --compression` and the API (a Map: no inherited keys). */
const COMPRESSION_NAMES: ReadonlyMap<string, number> = new Map([
  ['off', 0],
  ['fast', 1],
  ['default', DEFAULT_COMPRESSION_LEVEL],
  ['max', MAX_COMPRESSION_LEVEL],
]);

/**
 * A compression setting as an operator writes it: `off`, `fast`, `default`, `max`, or a zstd
 * level from 0 (off) to 19.
 */
export function parseCompressionLevel(value: string | number): number {
  const text = String(value).trim().toLowerCase();
  const named = COMPRESSION_NAMES.get(text);
  const level = named ?? (/^\d{1,2}$/.test(text) ? Number(text) : NaN);
  if (!Number.isInteger(level) || level < 0 || level > MAX_COMPRESSION_LEVEL) {
    throw new CofferError(
      'InvalidRequest',
      `compression '${String(value)}' is not valid: use off, fast, default, max or a zstd level from 0 to ${MAX_COMPRESSION_LEVEL}`,
      { field: 'compression', value: String(value) },
    );
  }
  return level;
}

/** The zstd level new blobs of this repository are compressed at (0: none). */
export function compressionLevel(config: RepositoryConfig): number {
  return config.compression?.level ?? DEFAULT_COMPRESSION_LEVEL;
}

export function newConfig(
  chunker?: ChunkerParams,
  packSize?: number,
  compression?: number,
): RepositoryConfig {
  const params = chunker ?? DEFAULT_CHUNKER_PARAMS;
  validateChunkerParams(params);
  const size = packSize ?? DEFAULT_PACK_SIZE;
  if (!Number.isInteger(size) || size < 1024 || size > 256 * 1024 * 1024) {
    throw new CofferError('InvalidRequest', 'pack size must be between 1 KiB and 256 MiB', {
      packSize: size,
    });
  }
  return {
    version: FORMAT_VERSION,
    id: randomBytes(32).toString('hex'),
    chunker: {
      minSize: params.minSize,
      avgSize: params.avgSize,
      maxSize: params.maxSize,
      gearSeed: randomBytes(32).toString('hex'),
    },
    packSize: size,
    compression: { level: parseCompressionLevel(compression ?? DEFAULT_COMPRESSION_LEVEL) },
  };
}

export function parseConfig(value: unknown): RepositoryConfig {
  const c = value as Partial<RepositoryConfig> | null;
  if (
    !c ||
    typeof c.id !== 'string' ||
    typeof c.version !== 'number' ||
    !c.chunker ||
    typeof c.chunker.gearSeed !== 'string' ||
    typeof c.packSize !== 'number'
  ) {
    throw new CofferError('RepositoryCorrupt', 'the repository config is malformed', { path: 'config' });
  }
  if (c.version !== FORMAT_VERSION) {
    throw new CofferError('RepositoryCorrupt', `repository format version ${c.version} is not supported`, {
      path: 'config',
      version: c.version,
    });
  }
  validateChunkerParams(c.chunker);
  const level = c.compression?.level;
  if (
    c.compression !== undefined &&
    (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > MAX_COMPRESSION_LEVEL)
  ) {
    throw new CofferError('RepositoryCorrupt', 'the repository config has an invalid compression level', {
      path: 'config',
    });
  }
  return c as RepositoryConfig;
}
