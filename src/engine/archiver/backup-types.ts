export interface BackupOptions {
  sourcePath: string;
  /** Files unchanged since this snapshot (size, mtime, ctime, inode) reuse its content without being read. */
  parentSnapshotId?: string;
  tags?: Record<string, string>;
  signal?: AbortSignal;
  /** Called as files are saved, at most every 50 ms, and once more with the final counts. */
  onProgress?: (p: BackupProgress) => void;
  /** Caps how fast source files are read, like restic's --limit-upload; unset means unlimited. */
  limitReadBytesPerSec?: number;
}

export interface BackupStats {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirs: number;
  /** Sum of the sizes of every file in the snapshot. */
  bytesScanned: number;
  /** Bytes actually read from the source (unchanged files are not read). */
  bytesRead: number;
  /** Plaintext bytes of blobs the repository did not have before. */
  bytesNew: number;
  /** What those new blobs occupy in storage after compression and encryption. */
  bytesStored: number;
  blobsNew: number;
  durationMs: number;
  /** Entries skipped below the source root (unreadable, vanished, unsupported type). */
  warnings: string[];
}

export interface BackupProgress {
  phase: 'scanning' | 'saving' | 'finalizing';
  filesDone: number;
  /**
   * From a stat-only pre-scan running alongside, which grows until `scanDone`; for an
   * incremental backup, the parent backup's totals (an estimate, never below what is done).
   */
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  scanDone: boolean;
  bytesNew: number;
  bytesStored: number;
  currentPath: string;
}

export interface BackupResult {
  snapshotId: string;
  parentSnapshotId: string | null;
  stats: BackupStats;
}
