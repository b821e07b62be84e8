/**
 * The HTTP API (SPEC §4): Fastify with JSON schemas for every route, the OpenAPI document
 * generated from them at /openapi.json, rendered docs at /docs, problem+json for every failure.
 */
import type { ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { AppContext } from '../app/context.js';
import { CofferError } from '../errors/coffer-error.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Authenticator } from './auth.js';
import type { Api, HttpDeps } from './deps.js';
import { sendProblem, toProblem } from './problem.js';
import { jobRoutes } from './routes/jobs.js';
import { policyRoutes } from './routes/policies.js';
import { resourceRoutes } from './routes/resources.js';
import { serviceRoutes } from './routes/service.js';
import { webRoutes } from './routes/web.js';
import { whoamiRoutes } from './routes/whoami.js';
import { workerRoutes } from './routes/workers.js';

export interface ServerOptions {
  app: AppContext;
  metrics: Metrics;
  logger: Logger;
  draining?: () => boolean;
}

export interface HttpServer {
  api: Api;
  auth: Authenticator;
  /** Ends open event streams so close() does not wait for clients that never hang up. */
  endStreams(): void;
}

export const API_VERSION = '0.1.0';

export async function buildServer(opts: ServerOptions): Promise<HttpServer> {
  const api: Api = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast only widens the generic.
    loggerInstance: opts.logger as FastifyBaseLogger,
    // Requests are counted in metrics; logging each one would drown the job lines.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // Unknown fields must be refused, not silently dropped, so clients learn about typos.
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false },
    },
    return503OnClosing: true,
    // Router-level failures (a malformed URL, an over-long path segment) arrive here rather
    // than in the error handler; they get the same problem+json.
    frameworkErrors: (err, request, reply) => {
      const status =
        typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500
          ? err.statusCode
          : 400;
      const detail =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? 'a path segment is too long'
          : `the request URL is not valid (${err.code ?? 'bad URL'})`;
      void sendProblem(reply, new CofferError('InvalidRequest', detail, { field: 'path' }), request, status);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const streams = new Set<ServerResponse>();
  const deps: HttpDeps = {
    app: opts.app,
    metrics: opts.metrics,
    streams,
    draining: opts.draining ?? (() => false),
  };
  const auth = new Authenticator(opts.app.store);

  await api.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'coffer API',
        version: API_VERSION,
        description:
          'Backups that never run twice at once. Every failure is application/problem+json with a `code` from the error catalog and `recommendedSteps`.',
      },
      components: {
        securitySchemes: {
          token: { type: 'http', scheme: 'bearer', description: 'an API token from `coffer token create`' },
        },
      },
      security: [{ token: [] }],
      tags: [
        { name: 'jobs', description: 'The jobs view: backups, restores and checks with their history' },
        { name: 'items', description: 'Protected items, their recovery points and triggers' },
        { name: 'vaults', description: 'Encrypted backup stores' },
        { name: 'policies', description: 'Schedules, retention and overlap policies' },
        { name: 'insights', description: 'Warnings before conflicts happen' },
        { name: 'workers', description: 'Worker processes and the jobs they hold' },
        { name: 'errors', description: 'The self-help catalog' },
        { name: 'access', description: 'API tokens and the audit log' },
        { name: 'service', description: 'Health, readiness and metrics' },
      ],
    },
  });
  await api.register(swaggerUi, { routePrefix: '/docs' });

  api.decorateRequest('principal', null);
  api.addHook('onRequest', auth.hook);
  // A POST without a body means "no options": validate it as {} rather than refuse it.
  api.addHook('preValidation', async (request) => {
    if (request.method === 'POST' && request.body === undefined) request.body = {};
  });
  api.addHook('onResponse', async (request, reply) => {
    opts.metrics.httpRequests.inc({
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    });
  });

  api.setErrorHandler((err, request, reply) => {
    const { error, status } = toProblem(err instanceof Error ? err : new Error(String(err)), request.log);
    return sendProblem(reply, error, request, status);
  });
  api.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      new CofferError('InvalidRequest', `no route ${request.method} ${request.url.split('?')[0]}`, {
        field: 'path',
      }),
      request,
      404,
    ),
  );

  api.get('/openapi.json', { schema: { hide: true } }, async () => api.swagger());
  jobRoutes(api, deps);
  resourceRoutes(api, deps);
  serviceRoutes(api, deps);
  policyRoutes(api, deps);
  whoamiRoutes(api, auth);
  workerRoutes(api, deps);
  webRoutes(api);

  return {
    api,
    auth,
    endStreams() {
      for (const s of streams) s.end();
      streams.clear();
    },
  };
}
