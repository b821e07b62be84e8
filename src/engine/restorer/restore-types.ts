export interface RestoreOptions {
  snapshotId: string;
  /** Directory to restore into; created when missing. Nothing is ever written outside it. */
  target: string;
  /** '/'-separated path inside the snapshot; the whole snapshot when omitted. */
  subpath?: string;
  signal?: AbortSignal;
  onProgress?: (p: RestoreProgress) => void;
}

export interface RestoreProgress {
  phase: 'planning' | 'writing' | 'finishing';
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  currentPath: string;
}

export interface RestoreResult {
  snapshotId: string;
  target: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytesWritten: number;
  durationMs: number;
  /** Metadata that could not be applied (e.g. ownership when not running as root). */
  warnings: string[];
}
