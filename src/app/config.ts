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
  /** Read only when asked for: commands that touch no vault data never need a password. */
  passwordFile: string | undefined;
  /** COFFER_PASSWORD as it was in the environment the config was loaded from. */
  password: string | undefined;
}

export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: { passwordFile?: string } = {},
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
  return {
    home: resolve(env.COFFER_HOME || join(homedir(), '.coffer')),
    databaseUrl: env.COFFER_DATABASE_URL || undefined,
    leaseMs: Math.round(leaseSeconds * 1000),
    passwordFile: overrides.passwordFile ?? (env.COFFER_PASSWORD_FILE || undefined),
    password: env.COFFER_PASSWORD || undefined,
  };
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
