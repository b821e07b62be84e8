/**
 * Chunk-sized buffers kept for reuse, one free list per thread. Why: a backup's data path used
 * to allocate three or four fresh buffers per chunk (the plaintext handed out of the reading
 * thread, the sealed blob, the copy of a chunk that straddles two reads), on one thread and
 * freed on another. glibc keeps what a thread's arena freed for that arena, so the process held
 * about 100 MB of freed buffers at the peak of a large backup (docs/backup-performance.md,
 * "Memory"), on top of the buffers V8 had not collected yet. Reused buffers are never freed, so
 * neither happens, and their pages are already mapped, which also spares the page faults.
 *
 * Buffers come in power-of-two sizes from 64 KiB to 16 MiB and travel between threads whole
 * (transferred ArrayBuffers): a thread gives back whatever reaches it, whichever thread made it.
 * Smaller requests get an exact buffer that is never kept (malloc serves those well).
 */

/** Smallest size kept for reuse. */
export const RECYCLE_MIN = 64 * 1024;
/** Largest size kept: a pack-sized buffer is PackBuffers' business. */
const RECYCLE_MAX = 16 * 1024 * 1024;

/** Bytes a thread's free list holds at most; past that, returned buffers are freed (see discard). */
export const RECYCLE_KEEP_BYTES = 24 * 1024 * 1024;
/**
 * A kept buffer not taken again for this long is freed (see trim). Why: the buffers of a few
 * large files early in a small-file tree sat in each engine thread's free list for the rest of
 * the backup (16-18 MB per thread on the 30,000-file benchmark tree, taken again about 150
 * times in all), at the backup's peak of memory. A large file's buffers come back within
 * milliseconds and stay.
 */
export const RECYCLE_IDLE_MS = 500;

/**
 * Frees an ArrayBuffer's memory at the collector's next minor collection, which comes within
 * milliseconds on a busy thread: its memory moves to a new, unreachable ArrayBuffer and it is
 * left detached. Why: a buffer that has lived a while is in the old generation, and dropped, it
 * waited for a full collection, which an engine thread with a small heap does rarely; buffers
 * dropped that way were still in memory at the peak, so a smaller cap did not lower it. The
 * caller must hold no view of it that is still in use (they become empty).
 */
export function discard(ab: ArrayBuffer): void {
  // A detached buffer (discarded already, or transferred) cannot be transferred again.
  if (ab.byteLength > 0) structuredClone(ab, { transfer: [ab] });
}

/** True for the sizes the recycler hands out (and so takes back). */
export function isRecycledSize(bytes: number): boolean {
  return bytes >= RECYCLE_MIN && bytes <= RECYCLE_MAX && (bytes & (bytes - 1)) === 0;
}

function sizeFor(length: number): number {
  let size = RECYCLE_MIN;
  while (size < length) size *= 2;
  return size;
}

/**
 * Bytes `b` may grow to in place: the rest of its pooled buffer when it starts one (`take` may
 * hand out a view of a larger buffer), else its length.
 */
export function capacity(b: Buffer): number {
  const ab = b.buffer;
  return b.byteOffset === 0 && ab instanceof ArrayBuffer && pooled.has(ab) ? ab.byteLength : b.length;
}

/**
 * ArrayBuffers of the recycler's making that this thread holds (taken here, or received from
 * another thread's recycler): only these may travel whole though a view covers part of them.
 */
const pooled = new WeakSet<ArrayBuffer>();

/** Marks a buffer that arrived from another thread as a pooled one (see `wholeBuffer`). */
export function adoptPooled(ab: ArrayBuffer): void {
  if (isRecycledSize(ab.byteLength)) pooled.add(ab);
}

/**
 * The ArrayBuffer to transfer for `b`: its own when `b` covers all of it or it is a pooled
 * buffer `b` starts (the receiver takes `b.length` with it), else a copy. Never Node's shared
 * pool, which other Buffers use.
 */
export function wholeBuffer(b: Uint8Array): ArrayBuffer {
  const ab = b.buffer;
  if (ab instanceof ArrayBuffer && b.byteOffset === 0 && (b.byteLength === ab.byteLength || pooled.has(ab))) {
    return ab;
  }
  const copy = threadRecycler.take(b.byteLength);
  copy.set(b);
  return copy.buffer as ArrayBuffer;
}

interface Kept {
  ab: ArrayBuffer;
  /** performance.now() when it was given back. */
  since: number;
}

export class BufferRecycler {
  /** Per size, oldest first. */
  private readonly free = new Map<number, Kept[]>();
  private keptBytes = 0;
  private trimmedAt = 0;

  constructor(
    private readonly keepBytes = RECYCLE_KEEP_BYTES,
    private readonly idleMs = RECYCLE_IDLE_MS,
  ) {}

  /** Bytes held in the free lists now. */
  get kept(): number {
    return this.keptBytes;
  }

  /**
   * A buffer of exactly `length` bytes (contents undefined). From RECYCLE_MIN up it is a view of
   * a pooled ArrayBuffer of the next power-of-two size; give that ArrayBuffer back when done.
   */
  take(length: number): Buffer {
    if (length < RECYCLE_MIN || length > RECYCLE_MAX) return Buffer.allocUnsafeSlow(length);
    const size = sizeFor(length);
    // A kept buffer up to two sizes larger serves too. Why: chunk sizes spread over several
    // sizes, and a free list holding only others sent the thread to fresh memory (page faults)
    // while it held buffers that would have done (see `capacity`).
    let ab: ArrayBuffer | undefined;
    for (let s = size; !ab && s <= Math.min(4 * size, RECYCLE_MAX); s *= 2) {
      ab = this.free.get(s)?.pop()?.ab;
      if (ab) this.keptBytes -= s;
    }
    this.trimSometimes();
    if (!ab) pooled.add((ab = Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer));
    return Buffer.from(ab, 0, length);
  }

  /**
   * Takes back a pooled buffer (one a recycler made: see adoptPooled for those from another
   * thread) whose every view is dead; one past the cap is freed, anything else is left alone.
   */
  give(ab: ArrayBuffer): void {
    const size = ab.byteLength;
    // A detached buffer (given twice, say) holds no memory to keep.
    if (!pooled.has(ab) || size === 0) return;
    if (this.keptBytes + size > this.keepBytes) {
      discard(ab);
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    const now = performance.now();
    list.push({ ab, since: now });
    this.keptBytes += size;
    this.trimSometimes(now);
  }

  /** Frees the kept buffers no take has wanted for the idle time (see RECYCLE_IDLE_MS). */
  trim(now = performance.now()): void {
    this.trimmedAt = now;
    for (const [size, list] of this.free) {
      let idle = 0;
      while (idle < list.length && now - list[idle]!.since > this.idleMs) idle++;
      if (idle === 0) continue;
      for (const { ab } of list.splice(0, idle)) discard(ab);
      this.keptBytes -= idle * size;
    }
  }

  /** trim, at most a few times per idle time: takes and gives come thousands of times a second. */
  private trimSometimes(now = performance.now()): void {
    if (now - this.trimmedAt >= this.idleMs / 4) this.trim(now);
  }
}

/** This thread's recycler (module state is per thread: each worker has its own). */
export const threadRecycler = new BufferRecycler();
