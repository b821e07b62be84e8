/**
 * Process configuration from the environment (SPEC §4): where the catalog lives, the lease
 * TTL, and where the vault password comes from.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { CofferError } from '../errors/coffer-error.js';

export interface Config {
  home: string;
  databaseUrl: string | undefined;
  leaseMs: number;
  /** PostgreSQL connections per process (COFFER_DB_POOL_SIZE, --db-pool-size); undefined: the default. */
  dbPoolSize: number | undefined;
  /**
   * How often an idle worker looks for queued jobs while PostgreSQL notices wake it
   * (COFFER_WORKER_POLL_MS); without notices (SQLite, listener down) it polls every 250 ms.
   */
  workerPollMs: number;
  /** Read only when asked for: commands that touch no vault data never need a password. */
  passwordFile: string | undefined;
  /** COFFER_PASSWORD as it was in the environment the config was loaded from. */
  password: string | undefined;
}

export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: { passwordFile?: string | undefined; dbPoolSize?: number | undefined } = {},
): Config {
  const leaseRaw = env.COFFER_LEASE_SECONDS;
  let leaseSeconds = 30;
  if (leaseRaw !== undefined && leaseRaw !== '') {
    leaseSeconds = Number(leaseRaw);
    if (!Number.isFinite(leaseSeconds) || leaseSeconds < 1 || leaseSeconds > 86_400) {
      throw new CofferError(
        'InvalidRequest',
        `COFFER_LEASE_SECONDS must be a number of seconds from 1 to 86400, not '${leaseRaw}'`,
        {
          field: 'COFFER_LEASE_SECONDS',
        },
      );
    }
  }
  const poolRaw = env.COFFER_DB_POOL_SIZE;
  const dbPoolSize =
    overrides.dbPoolSize ??
    (poolRaw ? intFromEnv('COFFER_DB_POOL_SIZE', poolRaw, 1, MAX_DB_POOL_SIZE, 'connections') : undefined);
  const pollRaw = env.COFFER_WORKER_POLL_MS;
  const workerPollMs = pollRaw
    ? intFromEnv('COFFER_WORKER_POLL_MS', pollRaw, 50, 600_000, 'milliseconds')
    : DEFAULT_WORKER_POLL_MS;
  return {
    home: resolve(env.COFFER_HOME || join(homedir(), '.coffer')),
    databaseUrl: env.COFFER_DATABASE_URL || undefined,
    leaseMs: Math.round(leaseSeconds * 1000),
    dbPoolSize,
    workerPollMs,
    passwordFile: overrides.passwordFile ?? (env.COFFER_PASSWORD_FILE || undefined),
    password: env.COFFER_PASSWORD || undefined,
  };
}

export const MAX_DB_POOL_SIZE = 1000;
/** Idle poll with PostgreSQL notices: a fallback only, notices wake the worker at once. */
export const DEFAULT_WORKER_POLL_MS = 5000;

function intFromEnv(name: string, raw: string, min: number, max: number, unit: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CofferError(
      'InvalidRequest',
      `${name} must be a whole number of ${unit} from ${min} to ${max}, not '${raw}'`,
      {
        field: name,
      },
    );
  }
  return n;
}

/** The vault password: --password-file (or COFFER_PASSWORD_FILE) wins over COFFER_PASSWORD. */
export function readPassword(config: Config): string {
  if (config.passwordFile) {
    let text: string;
    try {
      text = readFileSync(config.passwordFile, 'utf8');
    } catch (err) {
      throw new CofferError(
        'PasswordRequired',
        `cannot read the password file ${config.passwordFile}: ${(err as Error).message}`,
        {
          path: config.passwordFile,
        },
      );
    }
    const password = text.replace(/\r?\n$/, '');
    if (!password)
      throw new CofferError('PasswordRequired', `the password file ${config.passwordFile} is empty`, {
        path: config.passwordFile,
      });
    return password;
  }
  const password = config.password;
  if (!password) {
    throw new CofferError(
      'PasswordRequired',
      'this command needs the vault password: set COFFER_PASSWORD or pass --password-file FILE',
    );
  }
  return password;
}
