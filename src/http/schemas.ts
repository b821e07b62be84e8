/**
 * JSON schemas of the HTTP API (TypeBox). Fastify validates requests with them and the
 * OpenAPI document at /openapi.json is generated from them, so the contract is written once.
 * Request bodies are closed (additionalProperties: false): an unknown field is a 400 naming it.
 */
import { Type, type Static } from 'typebox';
import { ERROR_CODES } from '../errors/codes.js';
import { JOB_STATES, OPERATIONS } from '../jobs/job.js';
import { RETENTION_RULES } from '../scheduler/retention.js';

const Nullable = <
  T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer> | ReturnType<typeof Type.Number>,
>(
  t: T,
) => Type.Union([t, Type.Null()]);

export const Name = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
  description: 'letters, digits, . _ -; 1-64 characters',
});
export const Ref = Type.String({
  minLength: 1,
  maxLength: 100,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$',
  description: 'name or id',
});
export const JobId = Type.String({ pattern: '^j_[0-9a-z]{16}$', description: 'job id' });

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ enum: [...ERROR_CODES] }),
    recommendedSteps: Type.Array(Type.String()),
    docs: Type.Array(Type.Object({ title: Type.String(), href: Type.String() })),
    retryable: Type.Boolean(),
    instance: Type.Optional(Type.String()),
    blockingJob: Type.Optional(
      Type.Object(
        {
          id: Type.String(),
          operation: Type.String(),
          vaultId: Type.String(),
          vaultName: Type.String(),
          itemId: Type.String(),
          itemName: Type.String(),
          state: Type.String(),
          createdAt: Type.String(),
          startedAt: Nullable(Type.String()),
          progressPercent: Nullable(Type.Number()),
          trigger: Type.String(),
          leaseExpiresAt: Nullable(Type.String()),
          workerId: Nullable(Type.String()),
          etaSeconds: Nullable(Type.Number()),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true, description: 'RFC 9457 problem details with the coffer error catalog entry' },
);

export const Job = Type.Object(
  {
    id: Type.String(),
    operation: Type.String({ enum: [...OPERATIONS] }),
    state: Type.String({ enum: [...JOB_STATES] }),
    item: Type.Union([Type.Object({ id: Type.String(), name: Nullable(Type.String()) }), Type.Null()]),
    vault: Type.Object({ id: Type.String(), name: Nullable(Type.String()) }),
    trigger: Type.String({ description: 'on-demand, schedule, or "retry of <job>"' }),
    retryOf: Nullable(Type.String()),
    requestedBy: Nullable(Type.String()),
    scheduledFor: Nullable(Type.String()),
    createdAt: Type.String(),
    startedAt: Nullable(Type.String()),
    endedAt: Nullable(Type.String()),
    durationMs: Nullable(Type.Number()),
    progress: Type.Object({
      percent: Nullable(Type.Number()),
      filesDone: Type.Number(),
      filesTotal: Nullable(Type.Number()),
      bytesDone: Type.Number(),
      bytesTotal: Nullable(Type.Number()),
      bytesPerSecond: Nullable(Type.Number()),
      etaSeconds: Nullable(Type.Number()),
    }),
    bytesScanned: Type.Number(),
    bytesNew: Type.Number(),
    bytesStored: Type.Number(),
    worker: Nullable(Type.String()),
    workerHost: Nullable(Type.String({ description: 'host of the worker that ran the job' })),
    workerPid: Nullable(Type.Integer({ description: 'process id of that worker on its host' })),
    lease: Type.Union([
      Type.Object({ owner: Type.String(), expiresAt: Nullable(Type.String()), fencingToken: Type.Number() }),
      Type.Null(),
    ]),
    cancelRequestedAt: Nullable(Type.String()),
    error: Type.Union([Type.Object({ code: Type.String(), message: Nullable(Type.String()) }), Type.Null()]),
    warnings: Type.Array(Type.String()),
    recoveryPointId: Nullable(Type.String()),
    params: Type.Record(Type.String(), Type.Unknown()),
    result: Type.Record(Type.String(), Type.Unknown(), {
      description: "the finished job's report, e.g. a prune's pointsForgotten, packsDeleted, bytesFreed",
    }),
  },
  { description: 'a backup, restore, prune, check or delete-data job' },
);

export const WorkerHeldJob = Type.Object({
  id: Type.String(),
  operation: Type.String({ enum: [...OPERATIONS] }),
  state: Type.String({ enum: [...JOB_STATES] }),
  item: Type.Union([Type.Object({ id: Type.String(), name: Nullable(Type.String()) }), Type.Null()]),
  vault: Type.Object({ id: Type.String(), name: Nullable(Type.String()) }),
  slot: Type.String({ description: 'the lease owner: the worker id, plus #slot when it runs several jobs' }),
  leaseExpiresAt: Nullable(Type.String()),
  startedAt: Nullable(Type.String()),
  progressPercent: Nullable(Type.Number()),
});

export const Worker = Type.Object(
  {
    id: Type.String({ description: 'host:pid:start, the prefix of its lease owners' }),
    host: Type.String(),
    pid: Type.Integer(),
    kind: Type.String({ enum: ['serve', 'worker'] }),
    version: Type.String(),
    concurrency: Type.Integer(),
    startedAt: Type.String(),
    heartbeatAt: Type.String(),
    heartbeatSeconds: Type.Number(),
    state: Type.String({
      enum: ['live', 'lost'],
      description: 'lost: missed three heartbeats (killed, cut off from the catalog, or hung)',
    }),
    jobs: Type.Array(WorkerHeldJob),
  },
  { description: 'a worker process registered in the catalog and the jobs it holds' },
);

export const WorkerListQuery = Type.Object(
  { all: Type.Optional(Type.Boolean({ description: 'include lost workers', default: false })) },
  { additionalProperties: false },
);

export const JobEvent = Type.Object({
  at: Type.String(),
  state: Type.String(),
  message: Nullable(Type.String()),
});
export const JobDetail = Type.Intersect([Job, Type.Object({ events: Type.Array(JobEvent) })]);

export const JobList = Type.Object({
  jobs: Type.Array(Job),
  nextCursor: Nullable(Type.String({ description: 'pass as ?cursor= for the next (older) page' })),
});

export const JobListQuery = Type.Object(
  {
    vault: Type.Optional(Ref),
    item: Type.Optional(Ref),
    state: Type.Optional(
      Type.String({
        pattern: `^(${JOB_STATES.join('|')})(,(${JOB_STATES.join('|')}))*$`,
        description: 'comma-separated states',
      }),
    ),
    operation: Type.Optional(
      Type.String({
        pattern: `^(${OPERATIONS.join('|')})(,(${OPERATIONS.join('|')}))*$`,
        description: 'comma-separated operations',
      }),
    ),
    since: Type.Optional(
      Type.String({ maxLength: 40, description: 'ISO time or a duration back from now: 30m, 24h, 7d' }),
    ),
    until: Type.Optional(Type.String({ maxLength: 40 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

export const Vault = Type.Object({
  id: Type.String(),
  name: Type.String(),
  location: Type.String(),
  repositoryId: Type.String(),
  createdAt: Type.String(),
  items: Type.Optional(Type.Integer()),
  activeJobs: Type.Optional(Type.Integer()),
});

export const Item = Type.Object({
  id: Type.String(),
  name: Type.String(),
  vaultId: Type.String(),
  vaultName: Type.Optional(Type.String()),
  previousVaultId: Nullable(Type.String()),
  policyId: Type.Optional(Nullable(Type.String())),
  sourcePath: Type.String(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  lastJob: Type.Optional(
    Type.Union([
      Type.Object({ id: Type.String(), state: Type.String(), endedAt: Nullable(Type.String()) }),
      Type.Null(),
    ]),
  ),
  lastPoint: Type.Optional(
    Type.Union([Type.Object({ id: Type.String(), snapshotTime: Type.String() }), Type.Null()]),
  ),
  activeJob: Type.Optional(Type.Union([Job, Type.Null()])),
});

export const Point = Type.Object({
  id: Type.String(),
  itemId: Type.String(),
  vaultId: Type.String(),
  vaultName: Nullable(Type.String()),
  jobId: Type.String(),
  parentId: Nullable(Type.String()),
  sourcePath: Type.String(),
  files: Type.Number(),
  bytesScanned: Type.Number(),
  bytesNew: Type.Number(),
  bytesStored: Type.Number(),
  snapshotTime: Type.String(),
  retention: Type.Object(
    {
      keep: Type.Boolean({ description: "false: the next prune of the point's vault forgets it" }),
      keptBy: Type.Array(
        Type.Object({
          rule: Type.String({ enum: [...RETENTION_RULES] }),
          period: Type.String({
            description: '#N for last; else the local period it is the newest point of, e.g. 2024-03-10',
          }),
        }),
      ),
      policy: Nullable(Type.String()),
      summary: Type.String(),
    },
    { description: "which of the item's retention rules keep the point" },
  ),
});

export const Article = Type.Object({
  code: Type.String(),
  title: Type.String(),
  description: Type.String(),
  recommendedSteps: Type.Array(Type.String()),
  docs: Type.Array(Type.Object({ title: Type.String(), href: Type.String() })),
  httpStatus: Type.Integer(),
  exitCode: Type.Integer(),
  retryable: Type.Boolean(),
});

export const Token = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: Type.String(),
  createdAt: Type.String(),
  createdBy: Type.String(),
  lastUsedAt: Nullable(Type.String()),
  revokedAt: Nullable(Type.String()),
  token: Type.Optional(Type.String({ description: 'only in the response that created it' })),
});

export const BackupRequest = Type.Object(
  { limitReadBytesPerSec: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1e12 })) },
  { additionalProperties: false },
);
export const RestoreRequest = Type.Object(
  {
    target: Type.String({
      minLength: 1,
      maxLength: 4096,
      pattern: '^/',
      description: 'absolute directory on the worker host',
    }),
    point: Type.Optional(Type.String({ minLength: 8, maxLength: 64, pattern: '^[0-9a-f]+$' })),
    path: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  },
  { additionalProperties: false },
);
export const CheckRequest = Type.Object(
  { readData: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export const PruneRequest = Type.Object(
  { dryRun: Type.Optional(Type.Boolean({ description: 'delete nothing; the job reports what would go' })) },
  { additionalProperties: false },
);
export const ReleaseRequest = Type.Object(
  { force: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export const VaultCreate = Type.Object(
  {
    name: Name,
    path: Type.String({ minLength: 1, maxLength: 4096, pattern: '^/' }),
    compression: Type.Optional(
      Type.Union(
        [
          Type.Literal('off'),
          Type.Literal('fast'),
          Type.Literal('default'),
          Type.Literal('max'),
          Type.Integer({ minimum: 0, maximum: 19 }),
        ],
        { description: 'zstd compression of new data: a name or a level from 0 (off) to 19; default 3' },
      ),
    ),
  },
  { additionalProperties: false },
);
export const ItemCreate = Type.Object(
  { name: Name, vault: Ref, path: Type.String({ minLength: 1, maxLength: 4096, pattern: '^/' }) },
  { additionalProperties: false },
);
export const ItemMove = Type.Object({ vault: Ref }, { additionalProperties: false });
export const TokenCreate = Type.Object(
  { name: Name, role: Type.Union([Type.Literal('reader'), Type.Literal('operator'), Type.Literal('admin')]) },
  { additionalProperties: false },
);

export type JobListQueryT = Static<typeof JobListQuery>;
export type BackupRequestT = Static<typeof BackupRequest>;
export type RestoreRequestT = Static<typeof RestoreRequest>;
