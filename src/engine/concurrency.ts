/**
 * Runs `fn` over `items` with at most `limit` in flight, keeping result order. On the first
 * failure no new item starts, and the call settles only after the running ones finish, so a
 * caller's cleanup (e.g. after cancel) never races work that is still writing.
 */
export function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  return mapLanes(items, () => 0, [limit], fn);
}

/**
 * mapLimit with lanes: item i runs in lane `laneOf(item)`, which has at most `limits[lane]` in
 * flight, so items of one kind never wait behind, or take the places of, another kind's (the
 * archiver runs a directory's files 32 at a time and its subdirectories one at a time). One
 * failure stops every lane from starting more; result order and settling are mapLimit's.
 */
export async function mapLanes<T, R>(
  items: readonly T[],
  laneOf: (t: T) => number,
  limits: readonly number[],
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  const lanes = limits.map(() => [] as number[]);
  items.forEach((item, i) => lanes[laneOf(item)]!.push(i));
  let failed = false;
  let firstError: unknown;
  const runLane = (indices: number[], limit: number): Promise<void[]> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!failed && next < indices.length) {
        const i = indices[next++]!;
        try {
          out[i] = await fn(items[i]!);
        } catch (err) {
          if (!failed) firstError = err;
          failed = true;
        }
      }
    };
    return Promise.all(Array.from({ length: Math.min(limit, indices.length) }, worker));
  };
  // Workers never reject (they record the failure), so this waits for every running item.
  await Promise.all(lanes.map((indices, lane) => runLane(indices, limits[lane]!)));
  if (failed) throw firstError;
  return out;
}

/**
 * Counting semaphore with separate acquire and release, for work whose end is observed in a
 * callback rather than awaited where it starts (see the restorer's pipelined writes).
 */
export class Slots {
  private waiting: (() => void)[] = [];

  constructor(private available: number) {}

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const wake = this.waiting.shift();
    if (wake) wake();
    else this.available++;
  }
}

/** Counting semaphore; bounds resources (open files, read buffers) shared across nested tasks. */
export class Semaphore extends Slots {
  async use<R>(fn: () => Promise<R>): Promise<R> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}
