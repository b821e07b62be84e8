// The data engine's public surface: everything outside src/engine goes through these names.
export { Repository, type InitOptions } from './repository/repository.js';
export type { BackupOptions, BackupProgress, BackupResult, BackupStats } from './archiver/backup-types.js';
export type { RestoreOptions, RestoreProgress, RestoreResult } from './restorer/restore-types.js';
export type { CheckIssue, CheckIssueKind, CheckProgress, CheckReport } from './checker/check-types.js';
export type { Snapshot, SnapshotState, SnapshotSummary } from './snapshot/snapshot.js';
export type { ScryptParams } from './crypto/key-file.js';
export type { ChunkerParams } from './chunker/fastcdc.js';
export { DEFAULT_COMPRESSION_LEVEL, parseCompressionLevel } from './repository/repository-config.js';
export type { PruneOptions, PruneProgress, PruneReport } from './prune/prune-types.js';
export { warmEngineThreads } from './parallel/blob-pool.js';
