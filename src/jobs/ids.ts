import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
let counter = randomBytes(2).readUInt16BE() % 32768;

/**
 * Short, time-ordered ids (`j_` + 9 chars of milliseconds + 3 chars of a per-process counter +
 * 4 random chars) so the jobs view sorts by creation without a second key, ids made in the
 * same millisecond by one process keep their order, and operators can type an id.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  let out = '';
  let t = now;
  for (let i = 0; i < 9; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  counter = (counter + 1) % 32768;
  out += ALPHABET[(counter >> 10) & 31]! + ALPHABET[(counter >> 5) & 31]! + ALPHABET[counter & 31]!;
  for (const b of randomBytes(4)) out += ALPHABET[b % 32];
  return `${prefix}_${out}`;
}
