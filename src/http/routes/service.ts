/** Self-help articles, tokens, the audit log, health, readiness and metrics. */
import { sql } from 'kysely';
import { Type } from 'typebox';
import { generateToken, hashToken } from '../../access/tokens.js';
import { currentInsights } from '../../app/insights.js';
import { ERROR_CODES, articleFor } from '../../errors/index.js';
import { CofferError } from '../../errors/coffer-error.js';
import { actorOf } from '../auth.js';
import type { Api, HttpDeps } from '../deps.js';
import { Article, Problem, Ref, Token, TokenCreate } from '../schemas.js';
import { tokenOut } from '../views.js';

const problems = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem };

export function serviceRoutes(api: Api, deps: HttpDeps): void {
  const { app } = deps;

  api.get(
    '/api/v1/errors',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['errors'],
        summary: 'Every catalog entry',
        response: { 200: Type.Array(Article), ...problems },
      },
    },
    async () => ERROR_CODES.map((c) => articleFor(c)),
  );

  api.get(
    '/api/v1/errors/:code',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['errors'],
        summary: 'The self-help article for an error code',
        params: Type.Object({ code: Type.String({ maxLength: 64 }) }),
        response: { 200: Article, ...problems },
      },
    },
    async (request, reply) => {
      const code = ERROR_CODES.find((c) => c.toLowerCase() === request.params.code.toLowerCase());
      if (!code) {
        throw new CofferError(
          'InvalidRequest',
          `'${request.params.code}' is not a coffer error code; GET /api/v1/errors lists them`,
          { field: 'params.code' },
        );
      }
      void reply;
      return articleFor(code);
    },
  );

  api.get(
    '/api/v1/tokens',
    {
      config: { role: 'admin' },
      schema: { tags: ['access'], response: { 200: Type.Array(Token), ...problems } },
    },
    async () => (await app.store.listTokens()).map((t) => tokenOut(t)),
  );

  api.post(
    '/api/v1/tokens',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'Create a token; the response is the only time it is shown',
        body: TokenCreate,
        response: { 201: Token, ...problems },
      },
    },
    async (request, reply) => {
      const secret = generateToken();
      const t = await app.store.createToken({
        name: request.body.name,
        role: request.body.role,
        tokenHash: hashToken(secret),
        createdBy: actorOf(request),
      });
      await app.store.audit(actorOf(request), 'token.create', t.id, { name: t.name, role: t.role });
      return reply.code(201).send(tokenOut(t, secret));
    },
  );

  api.delete(
    '/api/v1/tokens/:token',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'Revoke a token',
        params: Type.Object({ token: Ref }),
        response: { 200: Token, ...problems },
      },
    },
    async (request) => {
      const t = await app.store.revokeToken(request.params.token);
      await app.store.audit(actorOf(request), 'token.revoke', t.id, { name: t.name });
      return tokenOut(t);
    },
  );

  api.get(
    '/api/v1/audit',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'Who changed what, newest first',
        querystring: Type.Object(
          { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Array(
            Type.Object({
              at: Type.String(),
              actor: Type.String(),
              action: Type.String(),
              target: Type.String(),
              detail: Type.Record(Type.String(), Type.Unknown()),
            }),
          ),
          ...problems,
        },
      },
    },
    async (request) =>
      (await app.store.listAudit(request.query.limit ?? 100)).map((e) => ({
        ...e,
        at: new Date(e.at).toISOString(),
      })),
  );

  api.get(
    '/api/v1/insights',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['insights'],
        summary:
          'Warnings from the job history, each with affected items, evidence and the recommended change',
        response: {
          200: Type.Array(
            Type.Object({
              kind: Type.String(),
              severity: Type.String(),
              title: Type.String(),
              items: Type.Array(Type.Object({ id: Type.String(), name: Type.String() })),
              evidence: Type.Record(Type.String(), Type.Unknown()),
              recommendation: Type.String(),
              docs: Type.Array(Type.Object({ title: Type.String(), href: Type.String() })),
            }),
          ),
          ...problems,
        },
      },
    },
    async () => currentInsights(app),
  );

  api.get('/healthz', { schema: { tags: ['service'], summary: 'The process is alive' } }, async () => ({
    status: 'ok',
  }));

  api.get(
    '/readyz',
    { schema: { tags: ['service'], summary: 'The catalog answers and the process takes work' } },
    async (_request, reply) => {
      if (deps.draining()) return reply.code(503).send({ status: 'draining' });
      try {
        await sql`select 1`.execute(app.catalog.db);
        return { status: 'ready', catalog: app.catalog.dialect };
      } catch {
        return reply.code(503).send({ status: 'catalog unavailable' });
      }
    },
  );

  api.get(
    '/metrics',
    {
      config: { role: 'reader' },
      schema: { tags: ['service'], summary: 'Prometheus metrics', produces: ['text/plain'] },
    },
    async (_request, reply) => {
      reply.type(deps.metrics.registry.contentType);
      return deps.metrics.registry.metrics();
    },
  );
}
