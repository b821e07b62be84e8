/**
 * The dashboard: the bundle built from src/web into dist/src/web, served at `/`. Client routes
 * get index.html (the app routes in the browser); hashed assets are cached for good. Nothing
 * here reads the catalog: the dashboard only talks to the public API.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyReply } from 'fastify';
import { packageRoot } from '../../platform/install-paths.js';
import type { Api } from '../deps.js';

/** dist/src/web, where `npm run build` writes the dashboard's bundle. */
export const WEB_ROOT = join(packageRoot(), 'dist', 'src', 'web');
/** The repository's docs/, which the error catalog's links point into. */
const DOCS_ROOT = join(packageRoot(), 'docs');

/** Paths the app routes itself; anything else stays a 404 problem+json. */
const CLIENT_ROUTES = ['/', '/jobs', '/jobs/:id', '/items', '/items/:item', '/policies', '/insights'];

// The bundle has no inline script or style, so the page may run only what the server sent.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

async function sendIndex(reply: FastifyReply) {
  let html: string;
  try {
    html = await readFile(join(WEB_ROOT, 'index.html'), 'utf8');
  } catch {
    return reply
      .code(503)
      .type('text/plain; charset=utf-8')
      .send('The dashboard is not built: run `npm run build`. The API is at /api/v1, its docs at /docs.\n');
  }
  return reply
    .header('cache-control', 'no-cache')
    .header('vary', 'accept')
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .type('text/html; charset=utf-8')
    .send(html);
}

export function webRoutes(api: Api): void {
  void api.register(async (scope) => {
    await scope.register(fastifyStatic, {
      root: existsSync(join(WEB_ROOT, 'assets')) ? join(WEB_ROOT, 'assets') : WEB_ROOT,
      prefix: '/assets/',
      decorateReply: false,
      index: false,
      // File names carry a content hash: a changed file is a new URL.
      immutable: true,
      maxAge: '365d',
      schemaHide: true,
    });
    for (const url of CLIENT_ROUTES) {
      scope.get(url, { schema: { hide: true } }, (_request, reply) => sendIndex(reply));
    }
    // The self-help articles link into docs/. A browser navigating there gets the app, which
    // renders the page; the app itself (and curl) gets the markdown.
    scope.get<{ Params: { page: string } }>(
      '/help/:page',
      { schema: { hide: true } },
      async (request, reply) => {
        const page = request.params.page;
        if (!/^[a-z0-9-]{1,64}\.md$/.test(page) || !existsSync(join(DOCS_ROOT, page)))
          return reply.callNotFound();
        if ((request.headers.accept ?? '').includes('text/html')) return sendIndex(reply);
        return reply
          .header('x-content-type-options', 'nosniff')
          .header('vary', 'accept')
          .type('text/markdown; charset=utf-8')
          .send(await readFile(join(DOCS_ROOT, page), 'utf8'));
      },
    );
  });
}
