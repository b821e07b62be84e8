/** Vaults, items, recovery points and the triggers that start jobs on them. */
import { Type } from 'typebox';
import { itemRetention } from '../../app/retention.js';
import { triggerBackup, triggerCheck, triggerPrune, triggerRestore } from '../../app/triggers.js';
import { addItem, createVault, moveItem } from '../../app/vaults.js';
import { isCofferError } from '../../errors/coffer-error.js';
import type { Admission } from '../../jobs/ports.js';
import { actorOf } from '../auth.js';
import type { Api, HttpDeps } from '../deps.js';
import {
  BackupRequest,
  CheckRequest,
  Item,
  ItemCreate,
  ItemMove,
  Job,
  Point,
  Problem,
  PruneRequest,
  Ref,
  RestoreRequest,
  Vault,
  VaultCreate,
} from '../schemas.js';
import { itemOut, jobOut, pointOut, rememberName, vaultOut } from '../views.js';

const problems = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem };
const itemParams = Type.Object({ item: Ref });
const vaultParams = Type.Object({ vault: Ref });

export function resourceRoutes(api: Api, deps: HttpDeps): void {
  const { app, metrics } = deps;

  /** Counts admissions and refusals for /metrics; the refusal itself propagates as problem+json. */
  async function admitted<A extends Admission>(operation: string, fn: () => Promise<A>): Promise<A> {
    try {
      const a = await fn();
      if (!a.reused) metrics.admissions.inc({ operation });
      return a;
    } catch (err) {
      if (isCofferError(err)) metrics.refusals.inc({ code: err.code });
      throw err;
    }
  }

  api.get(
    '/api/v1/vaults',
    {
      config: { role: 'reader' },
      schema: { tags: ['vaults'], response: { 200: Type.Array(Vault), ...problems } },
    },
    async () => (await app.store.listVaults()).map(vaultOut),
  );

  api.post(
    '/api/v1/vaults',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['vaults'],
        summary: "Create a vault (encrypted with the server's vault password)",
        body: VaultCreate,
        response: { 201: Vault, ...problems },
      },
    },
    async (request, reply) =>
      reply.code(201).send(
        vaultOut(
          await createVault(app, request.body.name, request.body.path, actorOf(request), {
            compression: request.body.compression,
          }),
        ),
      ),
  );

  api.get(
    '/api/v1/vaults/:vault',
    {
      config: { role: 'reader' },
      schema: { tags: ['vaults'], params: vaultParams, response: { 200: Vault, ...problems } },
    },
    async (request) => {
      const v = await app.store.getVault(request.params.vault);
      return vaultOut((await app.store.listVaults()).find((s) => s.id === v.id) ?? v);
    },
  );

  api.post(
    '/api/v1/vaults/:vault/checks',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['vaults'],
        summary: 'Verify a vault (a check job)',
        params: vaultParams,
        body: CheckRequest,
        response: { 202: Job, ...problems },
      },
    },
    async (request, reply) => {
      const a = await admitted('check', () =>
        triggerCheck(app, request.params.vault, {
          requestedBy: actorOf(request),
          readData: request.body?.readData === true,
        }),
      );
      return reply.code(202).send(await jobOut(app, a.job));
    },
  );

  api.post(
    '/api/v1/vaults/:vault/prunes',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['vaults'],
        summary:
          "Apply each item's retention to its points in the vault, then delete unneeded data (a prune job; 409 while one runs)",
        params: vaultParams,
        body: PruneRequest,
        response: { 202: Job, ...problems },
      },
    },
    async (request, reply) => {
      const a = await admitted('prune', () =>
        triggerPrune(app, request.params.vault, {
          requestedBy: actorOf(request),
          dryRun: request.body?.dryRun === true,
        }),
      );
      return reply.code(202).send(await jobOut(app, a.job));
    },
  );

  api.get(
    '/api/v1/items',
    {
      config: { role: 'reader' },
      schema: { tags: ['items'], response: { 200: Type.Array(Item), ...problems } },
    },
    async () => (await app.store.listItems()).map(itemOut),
  );

  api.post(
    '/api/v1/items',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['items'],
        summary: 'Protect a directory',
        body: ItemCreate,
        response: { 201: Item, ...problems },
      },
    },
    async (request, reply) => {
      const item = await addItem(
        app,
        { name: request.body.name, vaultRef: request.body.vault, path: request.body.path },
        actorOf(request),
      );
      return reply.code(201).send(itemOut(item));
    },
  );

  api.get(
    '/api/v1/items/:item',
    {
      config: { role: 'reader' },
      schema: { tags: ['items'], params: itemParams, response: { 200: Item, ...problems } },
    },
    async (request) => {
      const item = await app.store.getItem(request.params.item);
      const summary = (await app.store.listItems()).find((i) => i.id === item.id) ?? item;
      const active = await app.store.activeExclusiveJob(item.id);
      return { ...itemOut(summary), activeJob: active ? await jobOut(app, active) : null };
    },
  );

  api.post(
    '/api/v1/items/:item/move',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['items'],
        summary: 'Back the item up into another vault from now on',
        params: itemParams,
        body: ItemMove,
        response: { 200: Item, ...problems },
      },
    },
    async (request) =>
      itemOut((await moveItem(app, request.params.item, request.body.vault, actorOf(request))).item),
  );

  api.get(
    '/api/v1/items/:item/points',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['items'],
        summary: 'Recovery points, newest first, across vaults',
        params: itemParams,
        response: { 200: Type.Array(Point), ...problems },
      },
    },
    async (request) => {
      const item = await app.store.getItem(request.params.item);
      const names = new Map((await app.store.listVaults()).map((v) => [v.id, v.name]));
      const points = await app.store.listPoints(item.id);
      const retention = await itemRetention(app, item, points);
      return points.map((p) => pointOut(p, names.get(p.vaultId) ?? null, retention.get(p.id)!));
    },
  );

  api.post(
    '/api/v1/items/:item/backups',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['items'],
        summary: 'Trigger a backup now (refused with 409 while one is active for the item, in any vault)',
        params: itemParams,
        headers: Type.Object({
          'idempotency-key': Type.Optional(
            Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$' }),
          ),
        }),
        body: BackupRequest,
        response: { 202: Job, ...problems },
      },
    },
    async (request, reply) => {
      const a = await admitted('backup', () =>
        triggerBackup(app, request.params.item, {
          requestedBy: actorOf(request),
          idempotencyKey: request.headers['idempotency-key'] ?? null,
          limitReadBytesPerSec: request.body?.limitReadBytesPerSec,
        }),
      );
      if (a.reused) reply.header('Idempotent-Replayed', 'true');
      rememberName(a.item.id, a.item.name);
      request.log.info(
        { jobId: a.job.id, itemId: a.job.itemId, by: actorOf(request), reused: a.reused },
        'backup triggered',
      );
      return reply.code(202).send(await jobOut(app, a.job));
    },
  );

  api.post(
    '/api/v1/items/:item/restores',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['items'],
        summary: 'Restore a recovery point (latest by default) on the worker host',
        params: itemParams,
        body: RestoreRequest,
        response: { 202: Job, ...problems },
      },
    },
    async (request, reply) => {
      const a = await admitted('restore', () =>
        triggerRestore(app, request.params.item, {
          requestedBy: actorOf(request),
          target: request.body.target,
          point: request.body.point,
          subpath: request.body.path,
        }),
      );
      return reply.code(202).send(await jobOut(app, a.job));
    },
  );
}
