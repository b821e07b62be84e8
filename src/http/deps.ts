// Brings @fastify/swagger's schema fields (tags, summary, produces) into route typings.
import type {} from '@fastify/swagger';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, RawServerDefault, FastifyBaseLogger } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { IncomingMessage } from 'node:http';
import type { AppContext } from '../app/context.js';
import type { Metrics } from '../observability/metrics.js';

/** What every route module needs: the application, metrics, and the open event streams. */
export interface HttpDeps {
  app: AppContext;
  metrics: Metrics;
  /** Open server-sent event streams, ended on shutdown so the server can close. */
  streams: Set<ServerResponse>;
  /** Whether the process is shutting down (readiness turns false first). */
  draining: () => boolean;
}

export type Api = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;
