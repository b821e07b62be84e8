/** Policies over HTTP: CRUD, pause/resume, and assigning a policy to an item. */
import { Type } from 'typebox';
import {
  createPolicy,
  DEFAULT_CATCH_UP_MS,
  defaultTimeZone,
  deletePolicy,
  setItemPolicy,
  updatePolicy,
} from '../../app/policies.js';
import type { Policy } from '../../catalog/store.js';
import { nextDue, OVERLAP_POLICIES, type OverlapPolicy } from '../../scheduler/schedule.js';
import { actorOf } from '../auth.js';
import type { Api, HttpDeps } from '../deps.js';
import { Item, Problem, Ref } from '../schemas.js';
import { itemOut } from '../views.js';

const problems = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem };
const Retention = Type.Object(
  {
    last: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })),
    hourly: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })),
    daily: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })),
    weekly: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })),
    monthly: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })),
    yearly: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })),
  },
  { additionalProperties: false },
);
const Settings = {
  schedule: Type.String({ minLength: 1, maxLength: 200, description: 'cron expression, 5 or 6 fields' }),
  timezone: Type.String({ minLength: 1, maxLength: 64 }),
  jitterSeconds: Type.Integer({ minimum: 0, maximum: 86400 }),
  retention: Retention,
  overlap: Type.String({ enum: [...OVERLAP_POLICIES] }),
  catchUpSeconds: Type.Integer({ minimum: 0, maximum: 2592000 }),
  paused: Type.Boolean(),
  limitReadBytesPerSec: Type.Union([Type.Integer({ minimum: 1024, maximum: 1e12 }), Type.Null()]),
};
const PolicyOut = Type.Object({
  id: Type.String(),
  name: Type.String(),
  ...Settings,
  retention: Type.Record(Type.String(), Type.Integer()),
  overlap: Type.String(),
  nextRun: Type.Union([Type.String(), Type.Null()]),
  items: Type.Optional(Type.Integer()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
const PolicyCreate = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }),
    schedule: Settings.schedule,
    timezone: Type.Optional(Settings.timezone),
    jitterSeconds: Type.Optional(Settings.jitterSeconds),
    retention: Type.Optional(Retention),
    overlap: Type.Optional(Settings.overlap),
    catchUpSeconds: Type.Optional(Settings.catchUpSeconds),
    paused: Type.Optional(Settings.paused),
    limitReadBytesPerSec: Type.Optional(Settings.limitReadBytesPerSec),
  },
  { additionalProperties: false },
);
const PolicyPatch = Type.Object(
  {
    schedule: Type.Optional(Settings.schedule),
    timezone: Type.Optional(Settings.timezone),
    jitterSeconds: Type.Optional(Settings.jitterSeconds),
    retention: Type.Optional(Retention),
    overlap: Type.Optional(Settings.overlap),
    catchUpSeconds: Type.Optional(Settings.catchUpSeconds),
    paused: Type.Optional(Settings.paused),
    limitReadBytesPerSec: Type.Optional(Settings.limitReadBytesPerSec),
  },
  { additionalProperties: false },
);

function policyOut(p: Policy & { items?: number }) {
  return {
    id: p.id,
    name: p.name,
    schedule: p.schedule,
    timezone: p.timezone,
    jitterSeconds: p.jitterSeconds,
    retention: p.retention,
    overlap: p.overlap,
    catchUpSeconds: Math.round(p.catchUpMs / 1000),
    paused: p.paused,
    limitReadBytesPerSec: p.limitReadBytesPerSec,
    nextRun: p.paused ? null : new Date(nextDue(p.schedule, p.timezone, Date.now()) ?? 0).toISOString(),
    ...(p.items !== undefined ? { items: p.items } : {}),
    createdAt: new Date(p.createdAt).toISOString(),
    updatedAt: new Date(p.updatedAt).toISOString(),
  };
}

export function policyRoutes(api: Api, deps: HttpDeps): void {
  const { app } = deps;
  const params = Type.Object({ policy: Ref });

  api.get(
    '/api/v1/policies',
    {
      config: { role: 'reader' },
      schema: { tags: ['policies'], response: { 200: Type.Array(PolicyOut), ...problems } },
    },
    async () => (await app.store.listPolicies()).map(policyOut),
  );

  api.get(
    '/api/v1/policies/:policy',
    {
      config: { role: 'reader' },
      schema: { tags: ['policies'], params, response: { 200: PolicyOut, ...problems } },
    },
    async (request) => policyOut(await app.store.getPolicy(request.params.policy)),
  );

  api.post(
    '/api/v1/policies',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['policies'],
        summary: 'Create a policy',
        body: PolicyCreate,
        response: { 201: PolicyOut, ...problems },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const p = await createPolicy(
        app,
        {
          name: b.name,
          schedule: b.schedule,
          timezone: b.timezone ?? defaultTimeZone(),
          jitterSeconds: b.jitterSeconds ?? 0,
          retention: b.retention ?? {},
          overlap: (b.overlap ?? 'skip') as OverlapPolicy,
          catchUpMs: b.catchUpSeconds !== undefined ? b.catchUpSeconds * 1000 : DEFAULT_CATCH_UP_MS,
          paused: b.paused ?? false,
          limitReadBytesPerSec: b.limitReadBytesPerSec ?? null,
        },
        actorOf(request),
      );
      return reply.code(201).send(policyOut(p));
    },
  );

  api.patch(
    '/api/v1/policies/:policy',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['policies'],
        summary: 'Change a policy (also pause/resume)',
        params,
        body: PolicyPatch,
        response: { 200: PolicyOut, ...problems },
      },
    },
    async (request) => {
      const b = request.body;
      const p = await updatePolicy(
        app,
        request.params.policy,
        {
          schedule: b.schedule,
          timezone: b.timezone,
          jitterSeconds: b.jitterSeconds,
          retention: b.retention,
          overlap: b.overlap as OverlapPolicy | undefined,
          catchUpMs: b.catchUpSeconds !== undefined ? b.catchUpSeconds * 1000 : undefined,
          paused: b.paused,
          limitReadBytesPerSec: b.limitReadBytesPerSec,
        },
        actorOf(request),
      );
      return policyOut(p);
    },
  );

  api.delete(
    '/api/v1/policies/:policy',
    {
      config: { role: 'admin' },
      schema: { tags: ['policies'], params, response: { 204: Type.Null(), ...problems } },
    },
    async (request, reply) => {
      await deletePolicy(app, request.params.policy, actorOf(request));
      return reply.code(204).send(null);
    },
  );

  api.put(
    '/api/v1/items/:item/policy',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['items'],
        summary: 'Assign a policy to an item (null removes it)',
        params: Type.Object({ item: Ref }),
        body: Type.Object({ policy: Type.Union([Ref, Type.Null()]) }, { additionalProperties: false }),
        response: { 200: Item, ...problems },
      },
    },
    async (request) =>
      itemOut(await setItemPolicy(app, request.params.item, request.body.policy, actorOf(request))),
  );
}
