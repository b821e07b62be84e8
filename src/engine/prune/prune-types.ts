export interface PruneProgress {
  /** 'mark' walks snapshots, 'repack' copies live blobs out of mostly dead packs, 'sweep' deletes. */
  phase: 'mark' | 'repack' | 'sweep';
  done: number;
  total: number;
}

export interface PruneOptions {
  /** Compute and report what would happen without writing or deleting anything. */
  dryRun?: boolean;
  /**
   * Dry run only: snapshot ids to treat as already forgotten, so the report shows what forgetting
   * them (retention) would free. Ignored by a real run, which must never assume a snapshot is gone.
   */
  dryRunForget?: readonly string[];
  signal?: AbortSignal;
  onProgress?: (p: PruneProgress) => void;
  /**
   * Asked before deleting packs condemned by an earlier mark made at `markTime` (epoch ms): true
   * only when every backup of this vault that was running at `markTime` has ended. The caller
   * answers from its catalog (a backup counts as running from the moment its job starts, before
   * the engine loads anything, until it has committed or discarded its snapshot).
   */
  backupsRunningAtHaveEnded: (markTime: number) => Promise<boolean>;
}

export interface PruneReport {
  /** Pack files deleted by this run's sweep. */
  packsDeleted: number;
  bytesFreed: number;
  /** Packs this run's mark condemned (dead packs, unindexed leftovers and repacked packs). */
  packsCondemned: number;
  /** Mostly dead packs whose live blobs were copied into new packs (then condemned). */
  packsRepacked: number;
  /** Bytes of live blobs copied by repacking. */
  bytesRepacked: number;
  /** Index files the sweep replaced so that no entry names a deleted pack. */
  indexFilesRewritten: number;
  /**
   * Small index files folded into fewer, larger ones (each backup that stores data adds one;
   * prune folds them when more than eight are small). Nothing is removed from the index.
   */
  indexFilesCompacted: number;
  /** Indexed blobs that no committed or pending snapshot references (at the mark). */
  unreferencedBlobs: number;
  durationMs: number;
  dryRun: boolean;
  /** Condemned packs the sweep kept because a snapshot committed since the mark needs them. */
  packsRevived: number;
  /** Packs with unreferenced blobs left as they are (dead share at or below the repack threshold). */
  packsKeptPartlyUsed: number;
  /** Unreferenced bytes left in those packs. */
  bytesUnreferencedKept: number;
  /** Condemned lists still waiting for backups that were running at their mark. */
  condemnedListsWaiting: number;
  /** Packs in those lists. */
  packsWaiting: number;
}
