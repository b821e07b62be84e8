/**
 * The one storage interface a vault repository is written through. Providers (local
 * directory, S3-compatible bucket) implement only these primitives; cross-cutting
 * behaviour such as retries is added as a wrapper around a Backend, never as flags inside
 * a provider (the S3 provider's SDK client retries its own requests, which is transport). Paths are '/'-separated, relative to the repository root, and never contain
 * '..' segments.
 */
export interface Backend {
  /** Human-readable location, e.g. the directory path or s3://bucket/prefix. */
  readonly location: string;
  /**
   * Stores a whole object atomically: readers see either nothing or the complete bytes,
   * even if the process dies mid-write. Overwrites an existing object.
   * Throws CofferError('StorageFull') when the medium is out of space.
   */
  save(path: string, data: Uint8Array): Promise<void>;
  /**
   * Reads a whole object, or `length` bytes at `offset`. Throws if it does not exist. With
   * `into` (at least `length` bytes) a ranged read may land in that buffer, and the result is
   * then a view of it; a provider may ignore `into`, so callers use what is returned.
   */
  load(path: string, range?: { offset: number; length: number }, into?: Buffer): Promise<Buffer>;
  /** Size of an object, or null when it does not exist. */
  stat(path: string): Promise<{ size: number } | null>;
  /** Names (relative to `prefix`, '/'-separated) of every object below `prefix`, recursively. */
  list(prefix: string): Promise<string[]>;
  /** Deletes an object; deleting a missing object is not an error. */
  remove(path: string): Promise<void>;
  /**
   * Starts an object written piece by piece and named only when complete (a pack is named by
   * the hash of its bytes). Why: a backup used to build each 16 MiB pack in memory before
   * storing it, several at once; written through, a local vault's packs cost no memory.
   */
  startUpload(): Promise<ObjectUpload>;
}

/** An object being written (Backend.startUpload); invisible to readers until `commit`. */
export interface ObjectUpload {
  /**
   * Writes `data` at byte `offset`. Writes may be in flight together; together they cover the
   * object once, without gaps. The caller keeps `data` unchanged until the promise settles.
   */
  write(data: Uint8Array, offset: number): Promise<void>;
  /**
   * Waits for the writes and stores the object under `path` with Backend.save's guarantee:
   * readers see nothing or all of it, even if the process dies. At most once.
   */
  commit(path: string): Promise<void>;
  /** Discards what was written (a cancelled backup); harmless after commit or a failure. */
  abort(): Promise<void>;
}
