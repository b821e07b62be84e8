import type { ErrorCode } from './codes.js';

/**
 * One self-help article per error code (SPEC §3). The CLI, the HTTP API and the dashboard all
 * render these entries through render.ts, so each sentence here is the only copy of it.
 *
 * Steps may contain placeholders filled from the error's context (see render.ts):
 *   `{blockingJob.id|JOB_ID}`        dotted path into the context, then the fallback text
 *   `{blockingJob.itemName,item|ITEM}` several paths, the first one present wins
 * Every placeholder carries a fallback that reads well on its own: an upper-case name such as
 * `JOB_ID` inside a command (the operator substitutes it), plain words in prose.
 */
export interface ErrorArticle {
  code: ErrorCode;
  title: string;
  /** One sentence: what happened. No placeholders, so it reads the same everywhere. */
  description: string;
  /** Numbered, concrete steps, with real `coffer` commands the operator can run. */
  recommendedSteps: string[];
  /** Repository-relative links into docs/, with a heading anchor. */
  docs: { title: string; href: string }[];
  httpStatus: number;
  /** 75 ("try again later", sysexits EX_TEMPFAIL) for the in-progress refusal, 2 for usage errors, else 1. */
  exitCode: number;
  /** Whether repeating the same request later, without operator action, may succeed. */
  retryable: boolean;
}

const BEST = 'docs/best-practices.md';
const PERF = 'docs/backup-performance.md';
const RESTORE = 'docs/restore-considerations.md';

const doc = {
  oneAtATime: { title: 'One backup at a time', href: `${BEST}#one-backup-at-a-time` },
  movedItems: { title: 'Items moved to another vault', href: `${BEST}#items-moved-to-another-vault` },
  spacing: {
    title: 'Space schedules by backup duration',
    href: `${BEST}#space-schedules-by-backup-duration`,
  },
  overlap: { title: 'Choose an overlap policy', href: `${BEST}#choose-an-overlap-policy` },
  leases: { title: 'Leases and WorkerLost', href: `${BEST}#leases-and-workerlost` },
  release: { title: 'Releasing a stuck job', href: `${BEST}#releasing-a-stuck-job` },
  exit75: { title: 'Exit code 75 in scripts', href: `${BEST}#exit-code-75-in-scripts` },
  idempotency: {
    title: 'Idempotency keys for scripted triggers',
    href: `${BEST}#idempotency-keys-for-scripted-triggers`,
  },
  passwords: { title: 'Vault passwords', href: `${BEST}#vault-passwords` },
  passwordCopy: { title: 'Keep a copy of the password', href: `${BEST}#keep-a-copy-of-the-password` },
  verify: { title: 'Verify vaults regularly', href: `${BEST}#verify-vaults-regularly` },
  catalog: { title: 'Where the catalog lives', href: `${BEST}#where-the-catalog-lives` },
  sourceAccess: { title: 'Source permissions', href: `${BEST}#source-permissions` },
  jobStates: { title: 'Job states, cancel and retry', href: `${BEST}#job-states-cancel-and-retry` },
  tokens: { title: 'API tokens and roles', href: `${BEST}#api-tokens-and-roles` },
  missed: { title: 'Missed runs and catch-up', href: `${BEST}#missed-runs-and-catch-up` },
  progress: { title: 'Watching progress', href: `${PERF}#watching-progress` },
  longBackups: { title: 'Long backups and their schedule', href: `${PERF}#long-backups-and-their-schedule` },
  slow: { title: 'What makes a backup slow', href: `${PERF}#what-makes-a-backup-slow` },
  space: { title: 'Storage space and retention', href: `${PERF}#storage-space-and-retention` },
  retention: { title: 'Retention and prune', href: `${BEST}#retention-and-prune` },
  emptyTarget: { title: 'Restore into an empty target', href: `${RESTORE}#restore-into-an-empty-target` },
  insideTarget: {
    title: 'Restore never writes outside the target',
    href: `${RESTORE}#restore-never-writes-outside-the-target`,
  },
  choosePoint: { title: 'Choosing a recovery point', href: `${RESTORE}#choosing-a-recovery-point` },
  duringBackup: { title: 'Restoring while a backup runs', href: `${RESTORE}#restoring-while-a-backup-runs` },
  storageAlone: { title: 'Restoring from storage alone', href: `${RESTORE}#restoring-from-storage-alone` },
  verifyRestore: { title: 'Verify with check', href: `${RESTORE}#verify-with-check` },
  errorIndex: { title: 'Exit codes and HTTP statuses', href: 'docs/errors.md#exit-codes-and-http-statuses' },
  s3Settings: { title: 'S3 environment variables', href: 'docs/storage-s3.md#environment-variables' },
  s3Errors: { title: 'S3 errors and what they mean', href: 'docs/storage-s3.md#errors' },
} as const;

const articles: { [C in ErrorCode]: Omit<ErrorArticle, 'code'> } = {
  UserErrorBackupOperationInProgress: {
    title: 'A backup is already in progress for this item',
    description:
      'coffer refused to start a backup because another backup or delete-data job for the same protected item is still active (queued, in progress or cancelling), possibly in a different vault.',
    recommendedSteps: [
      "Look at the item's backup jobs in the vault that holds the blocking job: `coffer job list --vault {blockingJob.vaultName,vault|VAULT} --item {blockingJob.itemName,item|ITEM} --state in_progress` (a queued or cancelling job blocks too: use `--state queued` or `--state cancelling`).",
      'To let it finish, follow it with `coffer job show {blockingJob.id,jobId|JOB_ID} --follow`: it shows progress, the estimated time left and the lease expiry, and returns when the job has ended. Retry then.',
      'If the running job is no longer wanted, cancel it and wait until its worker has stopped: `coffer job cancel {blockingJob.id,jobId|JOB_ID} --wait`.',
      'If the item was moved with `coffer item move`, the blocking job may still run in its old vault (here: {blockingJob.vaultName|the vault named in the job}). The rule spans all vaults, so list without a vault filter: `coffer job list --item {blockingJob.itemName,item|ITEM} --state in_progress`.',
      'If the job makes no progress and its lease expiry is in the past, its worker has died: free the item at once with `coffer job release {blockingJob.id,jobId|JOB_ID}` (it ends as WorkerLost). Use `--force` only when you are sure the worker is gone, because it fences a live worker.',
      'Then retry: `coffer backup {blockingJob.itemName,item|ITEM}`. In scripts, exit code 75 means "refused, try again later": retry with a backoff instead of treating it as a failure.',
    ],
    docs: [doc.oneAtATime, doc.movedItems, doc.release, doc.exit75, doc.idempotency],
    httpStatus: 409,
    exitCode: 75,
    retryable: true,
  },
  WorkerLost: {
    title: 'The worker running this job stopped responding',
    description:
      'The worker holding this job stopped renewing its lease (it crashed, was killed or lost its connection to the catalog), so when the lease expired (or an operator released the job) coffer failed the job and freed the item.',
    recommendedSteps: [
      'See what the job had done and which worker held it: `coffer job show {jobId,blockingJob.id|JOB_ID}`.',
      'Check the host and logs of {workerId,blockingJob.workerId|the worker named in the job}: a killed process, a reboot, running out of memory or a network cut to the catalog database are the usual causes.',
      'Nothing from the lost run was committed and the item is free again. Start a new run with `coffer job retry {jobId,blockingJob.id|JOB_ID}`.',
      'If it happens repeatedly, list recent failures with `coffer job list --state failed --since 7d` and compare the workers named by `coffer job show` to see whether one worker or item keeps failing. A worker that pauses longer than COFFER_LEASE_SECONDS (default 30) loses its lease: raise it on every process if your workers stall for long (suspended VMs, overloaded hosts).',
    ],
    docs: [doc.leases, doc.release, doc.jobStates],
    httpStatus: 503,
    exitCode: 1,
    retryable: true,
  },
  JobCancelled: {
    title: 'The job was cancelled',
    description:
      'The job stopped because it was cancelled (with `coffer job cancel`, with Ctrl-C on a foreground run, or with `coffer job release` before it started or while it was cancelling) and it committed nothing.',
    recommendedSteps: [
      'See when it was cancelled and what triggered it: `coffer job show {jobId|JOB_ID}`.',
      'Check whether a newer run of the item has already been started: `coffer job list --item {item|ITEM}`.',
      'To run it again, start a new job for the same item: `coffer job retry {jobId|JOB_ID}`.',
    ],
    docs: [doc.jobStates],
    httpStatus: 409,
    exitCode: 1,
    retryable: false,
  },
  VaultNotFound: {
    title: 'No such vault',
    description:
      'The vault named in the request does not exist in this catalog, or its storage location holds no vault repository.',
    recommendedSteps: [
      'List the vaults this catalog knows: `coffer vault list`, and check the spelling of {vault|the vault name}.',
      'If the vault should exist, make sure you are using the right catalog: COFFER_HOME (default ~/.coffer) or COFFER_DATABASE_URL must point at the installation that created it.',
      'If the message says there is no vault at a path, the catalog knows the vault but its storage is missing there: check that the volume holding it is mounted at that path and was not moved or emptied.',
      'If the catalog was lost but the vault storage survives, do not create a new vault over it: register it again as described in "Restoring from storage alone".',
      'To create a new vault in an empty directory: `coffer vault create {vault|VAULT} --path DIR`.',
    ],
    docs: [doc.catalog, doc.storageAlone],
    httpStatus: 404,
    exitCode: 1,
    retryable: false,
  },
  VaultAlreadyExists: {
    title: 'The vault name or storage path is already in use',
    description:
      'A vault cannot be created because the name is already in use in this catalog, or the storage path already holds a vault repository.',
    recommendedSteps: [
      'See the existing vaults: `coffer vault list`.',
      'If that vault is the one you meant, use it as it is, for example `coffer item add NAME --vault {vault|VAULT} --path DIR`.',
      'If the storage path ({path|the path in the message}) holds a vault that this catalog does not list (for example after the catalog was lost), never create a new vault over it: register it as described in "Restoring from storage alone".',
      'Otherwise choose a different name and an empty directory: `coffer vault create NEW_NAME --path NEW_DIR`.',
    ],
    docs: [doc.catalog, doc.storageAlone],
    httpStatus: 409,
    exitCode: 1,
    retryable: false,
  },
  ItemNotFound: {
    title: 'No such protected item',
    description: 'The protected item named in the request does not exist in this catalog.',
    recommendedSteps: [
      'List the protected items and their vaults: `coffer item list`, and check the spelling of {item|the item name}.',
      'If you expect it to exist, check that COFFER_HOME or COFFER_DATABASE_URL points at the right catalog.',
      'To put the data source under protection: `coffer item add {item|NAME} --vault VAULT --path DIR`.',
    ],
    docs: [doc.catalog],
    httpStatus: 404,
    exitCode: 1,
    retryable: false,
  },
  ItemAlreadyProtected: {
    title: 'This data source is already protected',
    description:
      'The item name, or the data source path, is already protected by an existing item, possibly in another vault.',
    recommendedSteps: [
      'Find the existing item and the vault it belongs to: `coffer item list`.',
      'To back it up into a different vault, move it instead of adding it twice (its history and identity are kept): `coffer item move {item|NAME} --vault {vault|VAULT}`.',
      'Two items for one data source would back it up twice and bypass the one-backup-at-a-time rule, so keep one item per source; pick another name only for a genuinely different path.',
    ],
    docs: [doc.oneAtATime, doc.movedItems],
    httpStatus: 409,
    exitCode: 1,
    retryable: false,
  },
  VaultPasswordInvalid: {
    title: 'Wrong vault password',
    description: "The password given could not decrypt the vault's key, so the vault cannot be opened.",
    recommendedSteps: [
      'Check which password coffer used: the file given with `--password-file` if there is one, otherwise COFFER_PASSWORD (look for stray spaces or a second line in the file, or a stale variable in the environment).',
      'Make sure the password belongs to {vault|this vault}: each vault has its own password, set by `coffer vault create`.',
      'Try again with the correct password, for example `COFFER_PASSWORD=... coffer check {vault|VAULT}`; `--password-file FILE` is a global option and goes before the subcommand (coffer --password-file FILE check {vault|VAULT}).',
      'If the password is lost, the data cannot be decrypted by anyone: restore it from the copy you keep outside the vault.',
    ],
    docs: [doc.passwords, doc.passwordCopy],
    // 403, not 401: the vault password is not HTTP authentication, and 401 would promise a
    // WWW-Authenticate challenge that repeating the request with other credentials answers.
    httpStatus: 403,
    exitCode: 1,
    retryable: false,
  },
  PasswordRequired: {
    title: 'A vault password is required',
    description:
      'The operation needs the vault password, and none was given, or the password file given cannot be read or is empty.',
    recommendedSteps: [
      'Pass the password in the environment: `export COFFER_PASSWORD=...` (keep it out of shell history, for example with `read -rs COFFER_PASSWORD`).',
      'Or keep it in a file readable only by the coffer user (`chmod 600`) and pass it with the global option `--password-file FILE`, placed before the subcommand (coffer --password-file FILE backup ITEM). If the message names a password file, check that it exists, is readable by this user and is not empty.',
      'For `coffer worker`, which runs detached jobs, give it the password the same way (in the service environment or with `--password-file`) so its jobs can open {vault|the vault}.',
    ],
    docs: [doc.passwords],
    httpStatus: 400,
    exitCode: 1,
    retryable: false,
  },
  RepositoryCorrupt: {
    title: 'The vault repository is damaged',
    description:
      'Data read from the vault storage failed verification: an object is missing, truncated, malformed or does not authenticate.',
    recommendedSteps: [
      'Stop writing to the vault: do not start new backups into {vault|it} until it has been checked.',
      'Find the extent of the damage: `coffer check {vault|VAULT} --read-data` reads and authenticates every blob and names what is broken.',
      'Look for the cause on the storage side ({path|the vault directory}): disk errors in the system log, a full or remounted file system, files changed by other tools or by a sync service.',
      'Restore what you need from a recovery point that `coffer check` reports as intact (`coffer point list ITEM`, then `coffer restore ITEM --target DIR --point ID`), and keep a second copy of important vaults.',
    ],
    docs: [doc.verify, doc.verifyRestore, doc.insideTarget, doc.storageAlone],
    // The storage backend (the upstream of this service) returned bad data: 502, since 500 is
    // kept for coffer's own bugs.
    httpStatus: 502,
    exitCode: 1,
    retryable: false,
  },
  StorageFull: {
    title: 'The vault storage is full',
    description:
      'Writing to the vault storage failed because the medium is out of space, and the job committed nothing.',
    recommendedSteps: [
      'Free or add space where {vault|the vault} is stored ({location|its storage directory or bucket}), for example by growing the volume or raising the bucket quota.',
      'Give the items retention rules (`coffer policy`) and free what they no longer keep with `coffer prune {vault|VAULT}` (`--dry-run` shows how much it would free). If the volume cannot grow, create a new vault on a larger medium (`coffer vault create NEW_VAULT --path NEW_DIR`) and move items to it with `coffer item move ITEM --vault NEW_VAULT`; the old vault keeps its recovery points for restores.',
      'Then check the vault is sound and start the job again: `coffer check {vault|VAULT}`, then `coffer job retry {jobId|JOB_ID}`.',
    ],
    docs: [doc.space, doc.verify],
    httpStatus: 507,
    exitCode: 1,
    retryable: false,
  },
  SourceUnreadable: {
    title: 'The data source cannot be read',
    description:
      'coffer could not read the protected data source: the path is missing, is not a directory, or the service lacks permission to read it.',
    recommendedSteps: [
      'Check that {path|the source path} exists on the host that runs the backup, and that the file system is mounted.',
      'Check that the user running the backup (the one running `coffer backup` in the foreground, or `coffer worker` for detached jobs) can read every file and list every directory below it (for example `sudo -u COFFER_USER ls -R {path|PATH}`).',
      "Compare with the path the item protects (`coffer item list`). An item's path cannot be changed yet: make the directory available at that path again, or protect the right directory as a new item with `coffer item add NEW_NAME --vault VAULT --path DIR`. Then run `coffer backup {item|ITEM}`.",
    ],
    docs: [doc.sourceAccess],
    httpStatus: 422,
    exitCode: 1,
    retryable: false,
  },
  InvalidRequest: {
    title: 'Invalid request',
    description:
      'The command or request is malformed: an argument or field is missing, unknown, or has an invalid value.',
    recommendedSteps: [
      'Check the value of {field|the field named in the message}: the message says what is expected.',
      'See the accepted arguments with `coffer COMMAND --help` (for example `coffer job list --help`). Global options such as `--password-file` go before the subcommand.',
      'Correct the request and send it again.',
    ],
    docs: [doc.errorIndex],
    httpStatus: 400,
    exitCode: 2,
    retryable: false,
  },
  JobNotFound: {
    title: 'No such job',
    description: 'No job with this id exists in the catalog.',
    recommendedSteps: [
      'Check the id ({jobId|the job id}) and find the job in the jobs view: `coffer job list --item ITEM` (add `--vault VAULT` or `--state failed` to narrow it down).',
      'Make sure COFFER_HOME or COFFER_DATABASE_URL points at the catalog that ran the job.',
    ],
    docs: [doc.jobStates, doc.catalog],
    httpStatus: 404,
    exitCode: 1,
    retryable: false,
  },
  JobNotCancellable: {
    title: 'The job has already finished',
    description: 'Only queued or in-progress jobs can be cancelled, and this job has already ended.',
    recommendedSteps: [
      'See how it ended: `coffer job show {jobId|JOB_ID}`.',
      'Nothing is left to cancel. If you meant a newer run of the same item, find it with `coffer job list --item {item|ITEM} --state in_progress`.',
    ],
    docs: [doc.jobStates],
    httpStatus: 409,
    exitCode: 1,
    retryable: false,
  },
  JobNotRetryable: {
    title: 'This job cannot be retried',
    description:
      'Only failed, cancelled, skipped or completed-with-warnings jobs can be retried, and this job is still active or completed cleanly.',
    recommendedSteps: [
      'See its state: `coffer job show {jobId|JOB_ID}`.',
      'If it is still queued, in progress or cancelling, wait for it to end with `coffer job show {jobId|JOB_ID} --follow`, or cancel it with `coffer job cancel {jobId|JOB_ID} --wait`, then retry.',
      'If it completed cleanly, start a fresh backup instead: `coffer backup {item|ITEM}`.',
    ],
    docs: [doc.jobStates],
    httpStatus: 409,
    exitCode: 1,
    retryable: false,
  },
  JobLeaseActive: {
    title: 'A live worker still holds this job',
    description: 'The job cannot be released because its lease is still being renewed by a live worker.',
    recommendedSteps: [
      'See which worker holds it and when the lease expires: `coffer job show {jobId,blockingJob.id|JOB_ID}`.',
      'If the job is working normally, let it finish, or stop it cleanly with `coffer job cancel {jobId,blockingJob.id|JOB_ID} --wait`.',
      'If {workerId,blockingJob.workerId|the worker} is stuck (alive but making no progress), force the release: `coffer job release {jobId,blockingJob.id|JOB_ID} --force`. This advances the fencing token, so the old worker can never commit.',
    ],
    docs: [doc.release, doc.leases],
    httpStatus: 409,
    exitCode: 1,
    retryable: true,
  },
  LeaseLost: {
    title: 'This worker lost its lease on the job',
    description:
      'The worker lost its lease on the job (it paused or lost contact for longer than the lease) and was fenced off, so nothing it did was committed.',
    recommendedSteps: [
      'See how the job ended and whether another run took over: `coffer job show {jobId|JOB_ID}`.',
      'Check why this worker ({workerId|this worker}) stalled: CPU or memory pressure, a suspended VM, or slow access to the catalog database.',
      'If no other run took over, start one: `coffer job retry {jobId|JOB_ID}`. Raise COFFER_LEASE_SECONDS if pauses longer than the lease are expected.',
    ],
    docs: [doc.leases, doc.release],
    httpStatus: 409,
    exitCode: 1,
    retryable: true,
  },
  PointNotFound: {
    title: 'No such recovery point',
    description: 'The recovery point named in the request does not exist for this item.',
    recommendedSteps: [
      'List the recovery points of the item, in every vault it has been in: `coffer point list {item|ITEM}`. If there are none yet, run a backup first: `coffer backup {item|ITEM}`.',
      'Pick one from the list and run `coffer restore {item|ITEM} --target DIR --point ID` (a unique prefix of the id is enough), or omit `--point` for the latest.',
      'If the point is listed but the message says it is not in the vault, its snapshot is missing from the vault storage: run `coffer check {vault|VAULT}`.',
    ],
    docs: [doc.choosePoint],
    httpStatus: 404,
    exitCode: 1,
    retryable: false,
  },
  RestoreTargetInvalid: {
    title: 'Unsafe restore target',
    description:
      'The restore was refused because the target cannot be used: it is not a directory or cannot be created, or an entry already in it is in the way (a directory where the point has a file, or a non-directory such as a symlink where the point has a directory).',
    recommendedSteps: [
      'Restore into a new, empty directory: `coffer restore {item|ITEM} --target NEW_DIR`, then move files into place yourself.',
      'If the message names an entry in the target ({path|the path in the message}), move that entry out of the way or choose another target, and check that the restoring user may write there.',
    ],
    docs: [doc.emptyTarget, doc.insideTarget],
    httpStatus: 422,
    exitCode: 1,
    retryable: false,
  },
  CatalogUnavailable: {
    title: 'The catalog database is unreachable',
    description:
      'coffer could not reach or open its catalog database, so no job, vault or item state could be read or written.',
    recommendedSteps: [
      'Check where coffer looks: COFFER_DATABASE_URL (PostgreSQL) if set, otherwise the SQLite catalog under COFFER_HOME (default ~/.coffer).',
      'For PostgreSQL, check that the server is up and reachable from this host, and that the user in the URL can log in.',
      'For SQLite, check that COFFER_HOME exists, is writable by this user, and is on a local disk (not a network share).',
      'Run the command again once the database is reachable; no job state was changed.',
    ],
    docs: [doc.catalog],
    httpStatus: 503,
    exitCode: 1,
    retryable: true,
  },
  ScheduledRunMissed: {
    title: 'Scheduled runs were missed while coffer was not running',
    description:
      'Scheduled backups came due while no coffer server was running, and runs older than the catch-up window are recorded once instead of being replayed.',
    recommendedSteps: [
      'See which runs were missed and whether a catch-up run followed: `coffer job list --item {item|ITEM} --state skipped`.',
      'If the item needs a backup now, start one: `coffer backup {item|ITEM}`.',
      'Keep `coffer serve` running (for example as a systemd service), or widen the catch-up window of the policy: `coffer policy update {policy|POLICY} --catch-up 6h`.',
    ],
    docs: [doc.missed, doc.spacing],
    httpStatus: 409,
    exitCode: 1,
    retryable: false,
  },
  PolicyNotFound: {
    title: 'No such policy',
    description: 'The policy named in the request does not exist.',
    recommendedSteps: [
      'List the policies: `coffer policy list`.',
      'Create it if it is missing: `coffer policy create NAME --schedule CRON`.',
    ],
    docs: [doc.spacing],
    httpStatus: 404,
    exitCode: 1,
    retryable: false,
  },
  PolicyInUse: {
    title: 'The policy is still assigned to items',
    description: 'A policy cannot be deleted while protected items use it.',
    recommendedSteps: [
      'See which items use it: `coffer policy show {policy|POLICY}`.',
      'Assign those items another policy, or none: `coffer item set-policy ITEM --none`.',
      'Then delete it: `coffer policy delete {policy|POLICY}`.',
    ],
    docs: [doc.spacing],
    httpStatus: 409,
    exitCode: 1,
    retryable: false,
  },
  PruneInProgress: {
    title: 'A prune of this vault is already running',
    description: 'Only one prune runs per vault at a time, and one is queued or running now.',
    recommendedSteps: [
      'Follow the running prune: `coffer job list --vault {vault|VAULT} --operation prune --state in_progress`, then `coffer job show {blockingJob.id,jobId|JOB_ID} --follow`.',
      'Backups, restores and checks of the vault keep working while it runs; start another prune after it ends if you still need one.',
    ],
    docs: [doc.retention, doc.space],
    httpStatus: 409,
    exitCode: 1,
    retryable: true,
  },
  Unauthenticated: {
    title: 'An API token is required',
    description:
      'The server has API tokens configured and the request carried no valid token, or a revoked one.',
    recommendedSteps: [
      'Send the token in the Authorization header: `Authorization: Bearer <token>`.',
      'If you have no token, ask an administrator to create one for you: `coffer token create --name NAME --role reader` (or operator, admin).',
      'If the token was revoked, check which tokens are active: `coffer token list`.',
    ],
    docs: [doc.tokens],
    httpStatus: 401,
    exitCode: 1,
    retryable: false,
  },
  Forbidden: {
    title: "The token's role does not allow this",
    description: 'The request was authenticated, but the role of its token does not include this action.',
    recommendedSteps: [
      'Readers may only read; operators may also trigger, cancel, retry and release jobs; admins may also change vaults, items and tokens.',
      'Use a token with the role {requiredRole|the action needs}, or ask an administrator for one: `coffer token create --name NAME --role operator`.',
    ],
    docs: [doc.tokens],
    httpStatus: 403,
    exitCode: 1,
    retryable: false,
  },
  InternalError: {
    title: 'Internal error',
    description: 'coffer hit an unexpected condition it has no specific error for; this is a bug.',
    recommendedSteps: [
      'Run the command again; if it fails the same way, keep the full output and, for a detached job, the log of the `coffer worker` that ran it.',
      'Verify that your vaults are intact: `coffer check {vault|VAULT}`.',
      'Report the bug with the output, the coffer version and the steps that led to it.',
    ],
    docs: [doc.verify],
    httpStatus: 500,
    exitCode: 1,
    retryable: false,
  },
  StorageUnavailable: {
    title: 'The vault storage cannot be reached or refused access',
    description:
      'The object storage holding the vault could not be reached after retries, refused the credentials or permissions coffer used, or has no bucket by that name, so nothing was read or written there.',
    recommendedSteps: [
      'The message names the storage location ({location|the vault location}) and what went wrong: {reason|unreachable, access-denied or no-such-bucket}. Follow the matching step below.',
      'For an unreachable endpoint: check AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL on the host that ran the job (the `coffer worker` service for detached jobs) and that the server answers from there.',
      'For refused access: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS profile), and that the key may list, read, write and delete objects under the prefix. A server without wildcard DNS needs path-style addressing: COFFER_S3_FORCE_PATH_STYLE=true.',
      'For a missing bucket: create it on the storage side (coffer never creates buckets), or correct the location. Then run the job again, for example `coffer job retry {jobId|JOB_ID}`, and `coffer check {vault|VAULT}` once it works.',
    ],
    docs: [doc.s3Settings, doc.s3Errors],
    httpStatus: 503,
    exitCode: 1,
    retryable: true,
  },
};

// Frozen all the way down: adapters share these objects, and one of them editing a step in
// place would change what every other surface shows.
function freezeArticle(code: ErrorCode, body: Omit<ErrorArticle, 'code'>): ErrorArticle {
  Object.freeze(body.recommendedSteps);
  body.docs.forEach((link) => Object.freeze(link));
  Object.freeze(body.docs);
  return Object.freeze({ code, ...body });
}

export const ARTICLES: Readonly<Record<ErrorCode, ErrorArticle>> = Object.freeze(
  Object.fromEntries(
    (Object.keys(articles) as ErrorCode[]).map((code) => [code, freezeArticle(code, articles[code])]),
  ) as Record<ErrorCode, ErrorArticle>,
);

/** The article for `code`. Throws for a string that is not a catalog code (a programming error). */
export function articleFor(code: ErrorCode): ErrorArticle {
  const article = Object.hasOwn(ARTICLES, code) ? ARTICLES[code] : undefined;
  if (article === undefined) throw new RangeError(`no error article for code ${JSON.stringify(code)}`);
  return article;
}
