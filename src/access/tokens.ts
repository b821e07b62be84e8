import { createHash, randomBytes } from 'node:crypto';

const PREFIX = 'cft_';

/** A new API token: 256 random bits, prefixed so secret scanners and people can recognise it. */
export function generateToken(): string {
  return PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function looksLikeToken(value: string): boolean {
  return value.startsWith(PREFIX) && value.length >= PREFIX.length + 40 && value.length <= 100;
}
