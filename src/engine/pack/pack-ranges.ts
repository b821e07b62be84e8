/**
 * Groups blobs of one pack into reads: neighbours closer than `maxGap` bytes share a read of at
 * most `maxSize` bytes (a blob larger than that is read alone). Why: each read is a request to
 * storage (on S3, a GET), and skipping a small gap costs less than another request.
 */
export interface PackRange<T> {
  start: number;
  end: number;
  items: T[];
}

/** `items` must be sorted by offset; `at` gives each one's place in the pack. */
export function packRanges<T>(
  items: readonly T[],
  at: (item: T) => { offset: number; length: number },
  maxGap: number,
  maxSize: number,
): PackRange<T>[] {
  const ranges: PackRange<T>[] = [];
  let i = 0;
  while (i < items.length) {
    const first = at(items[i]!);
    const start = first.offset;
    let end = start + first.length;
    let j = i + 1;
    while (j < items.length) {
      const e = at(items[j]!);
      if (e.offset - end > maxGap || e.offset + e.length - start > maxSize) break;
      end = Math.max(end, e.offset + e.length);
      j++;
    }
    ranges.push({ start, end, items: items.slice(i, j) });
    i = j;
  }
  return ranges;
}
