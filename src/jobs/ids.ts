import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
/** The counter's range (15 bits); each millisecond starts it in the lower half. */
const COUNTER_LIMIT = 32768;
/** The millisecond of the last id, and the counter within it. */
let lastNow = -Infinity;
let counter = 0;

/**
 * Short, time-ordered ids (`j_` + 9 chars of milliseconds + 3 chars of a per-process counter +
 * 4 random chars) so the jobs view sorts by creation without a second key, ids made in the
 * same millisecond by one process keep their order, and operators can type an id. Each new
 * millisecond starts the counter at a random value below 16,384, so 16,384 ids of one
 * millisecond keep their order, and two processes rarely share both the counter and the random
 * part. Why: the counter used to run on from one random start and wrap at 32,768, so two ids
 * made in the same millisecond across the wrap came out in reverse order (a scheduler test saw
 * its catch-up run listed before the missed-runs record made just ahead of it). A clock that
 * goes back keeps the counter running; past its range it stays at the top.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  let out = '';
  let t = now;
  for (let i = 0; i < 9; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  if (now > lastNow) {
    lastNow = now;
    counter = randomBytes(2).readUInt16BE() % (COUNTER_LIMIT / 2);
  } else counter = Math.min(counter + 1, COUNTER_LIMIT - 1);
  out += ALPHABET[(counter >> 10) & 31]! + ALPHABET[(counter >> 5) & 31]! + ALPHABET[counter & 31]!;
  for (const b of randomBytes(4)) out += ALPHABET[b % 32];
  return `${prefix}_${out}`;
}
