import { sleep } from '../cancellation.js';

/**
 * Token bucket for source reads. The bucket holds at most a quarter second of budget, so bursts
 * stay small and the observed rate matches the limit over any window longer than that.
 */
export class ReadRateLimiter {
  readonly burstBytes: number;
  private tokens = 0;
  private last = performance.now();

  constructor(private readonly bytesPerSec: number) {
    this.burstBytes = Math.max(4096, Math.floor(bytesPerSec / 4));
  }

  /** Spends `n` bytes of budget, sleeping off any debt; returns early (without throwing) on abort. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) / 1000) * this.bytesPerSec);
    this.last = now;
    this.tokens -= n;
    if (this.tokens < 0) await sleep((-this.tokens / this.bytesPerSec) * 1000, signal);
  }
}
