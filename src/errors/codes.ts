// The stable error codes of coffer. Operators script against these names (SPEC §3), so a
// code is only ever added, never renamed. Articles for each code live in articles.ts.
export const ERROR_CODES = [
  'UserErrorBackupOperationInProgress',
  'WorkerLost',
  'JobCancelled',
  'VaultNotFound',
  'VaultAlreadyExists',
  'ItemNotFound',
  'ItemAlreadyProtected',
  'VaultPasswordInvalid',
  'PasswordRequired',
  'RepositoryCorrupt',
  'StorageFull',
  'SourceUnreadable',
  'InvalidRequest',
  'JobNotFound',
  'JobNotCancellable',
  'JobNotRetryable',
  'JobLeaseActive',
  'LeaseLost',
  'PointNotFound',
  'RestoreTargetInvalid',
  'CatalogUnavailable',
  'ScheduledRunMissed',
  'PolicyNotFound',
  'PolicyInUse',
  'PruneInProgress',
  'Unauthenticated',
  'Forbidden',
  'InternalError',
  'StorageUnavailable',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(value: string): value is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(value);
}
