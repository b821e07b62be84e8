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
}

export function newConfig(chunker?: ChunkerParams, packSize?: number): RepositoryConfig {
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
  return c as RepositoryConfig;
}
