/**
 * Runs `fn` over `items` with at most `limit` in flight, keeping result order. On the first
 * failure no new item starts, and the call settles only after the running ones finish, so a
 * caller's cleanup (e.g. after cancel) never races work that is still writing.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        if (!failed) firstError = err;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
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
