/**
 * A read-only set of blob ids that pool threads can consult without a round trip: the blobs the
 * repository already has when a backup starts. A thread that reads a file checks each chunk's
 * id here and, for a known chunk, sends back only the id instead of compressing it or copying
 * its bytes out.
 *
 * It holds the first 64 bits of each id (SHA-256, so uniformly distributed) in an open-addressed
 * table in a SharedArrayBuffer. A false "known" (two ids sharing 64 bits) is possible in
 * principle, so the main thread still checks the full id and re-reads the chunk when the
 * filter was wrong (see the archiver); a false "unknown" cannot happen.
 */

import type { MasterIndex } from '../index/master-index.js';

/** Slots per id, at least: keeps probe sequences short. */
const LOAD = 2;

export class KnownBlobFilter {
  private constructor(readonly table: SharedArrayBuffer) {}

  static build(ids: Iterable<string>, count: number): KnownBlobFilter {
    return KnownBlobFilter.fromPrefixes(count, (add) => {
      for (const id of ids) {
        add(Number.parseInt(id.slice(0, 8), 16) >>> 0, Number.parseInt(id.slice(8, 16), 16) >>> 0);
      }
    });
  }

  /** From the index's own bytes: no hex id is made (MasterIndex.forEachLivePrefix). */
  static fromIndex(index: MasterIndex): KnownBlobFilter {
    return KnownBlobFilter.fromPrefixes(index.blobCount, (add) => index.forEachLivePrefix(add));
  }

  /** `fill` calls `add` with the first 64 bits of each of at most `count` ids, as two words. */
  private static fromPrefixes(
    count: number,
    fill: (add: (hi: number, lo: number) => void) => void,
  ): KnownBlobFilter {
    let slots = 16;
    while (slots < count * LOAD) slots *= 2;
    // Two 32-bit words per slot; (0, 0) marks an empty slot (an id whose 64 bits are all zero is
    // simply never reported known, which is always safe).
    const table = new SharedArrayBuffer(slots * 8);
    const words = new Uint32Array(table);
    fill((hi, lo) => {
      if (hi === 0 && lo === 0) return;
      let i = lo & (slots - 1);
      for (;;) {
        const w = i * 2;
        if (words[w] === 0 && words[w + 1] === 0) {
          words[w] = hi;
          words[w + 1] = lo;
          return;
        }
        if (words[w] === hi && words[w + 1] === lo) return;
        i = (i + 1) & (slots - 1);
      }
    });
    return new KnownBlobFilter(table);
  }
}

let lastTable: SharedArrayBuffer | null = null;
let lastWords: Uint32Array = new Uint32Array(0);

/** Whether the 32-byte digest's first 64 bits are in the table (thread side of KnownBlobFilter). */
export function filterHas(table: SharedArrayBuffer, digest: Uint8Array): boolean {
  const hi = ((digest[0]! << 24) | (digest[1]! << 16) | (digest[2]! << 8) | digest[3]!) >>> 0;
  const lo = ((digest[4]! << 24) | (digest[5]! << 16) | (digest[6]! << 8) | digest[7]!) >>> 0;
  return lookup(table, hi, lo);
}

/** filterHas for an id in hex, as trees hold them. */
export function filterHasId(table: SharedArrayBuffer, id: string): boolean {
  return lookup(table, Number.parseInt(id.slice(0, 8), 16) >>> 0, Number.parseInt(id.slice(8, 16), 16) >>> 0);
}

function lookup(table: SharedArrayBuffer, hi: number, lo: number): boolean {
  if (table !== lastTable) {
    lastTable = table;
    lastWords = new Uint32Array(table);
  }
  const words = lastWords;
  const slots = words.length / 2;
  let i = lo & (slots - 1);
  for (;;) {
    const w = i * 2;
    const h = words[w]!;
    const l = words[w + 1]!;
    if (h === 0 && l === 0) return false;
    if (h === hi && l === lo) return true;
    i = (i + 1) & (slots - 1);
  }
}
