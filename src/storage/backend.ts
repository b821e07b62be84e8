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
  /** Reads a whole object, or `length` bytes at `offset`. Throws if it does not exist. */
  load(path: string, range?: { offset: number; length: number }): Promise<Buffer>;
  /** Size of an object, or null when it does not exist. */
  stat(path: string): Promise<{ size: number } | null>;
  /** Names (relative to `prefix`, '/'-separated) of every object below `prefix`, recursively. */
  list(prefix: string): Promise<string[]>;
  /** Deletes an object; deleting a missing object is not an error. */
  remove(path: string): Promise<void>;
}
