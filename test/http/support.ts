/**
 * Shared by the HTTP tests: the coffer API built in process on a real catalog (SQLite or
 * PostgreSQL) with a real vault password, driven with Fastify's inject(), plus the assertions
 * every problem+json answer must pass.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../../src/app/config.js';
import { openApp, type AppContext } from '../../src/app/context.js';
import { addItem, createVault } from '../../src/app/vaults.js';
import { startWorkerPool } from '../../src/app/worker.js';
import type { Item, Vault } from '../../src/catalog/store.js';
import { ERROR_CODES } from '../../src/errors/codes.js';
import type { Job } from '../../src/jobs/job.js';
import { buildServer, type HttpServer } from '../../src/http/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createTestCatalog, type TestCatalog } from '../support/catalogs.js';

export const PASSWORD = 'http suite password';

export interface Res {
  status: number;
  headers: LightMyRequestResponse['headers'];
  body: string;
  /** The parsed JSON body (undefined when the body is not JSON). */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- response shapes vary per route
}

export interface HttpWorld {
  tc: TestCatalog;
  app: AppContext;
  http: HttpServer;
  metrics: Metrics;
  /** A temp directory for vaults and source trees. */
  root: string;
  /** inject() with the body parsed; `token` adds a bearer header. */
  req(opts: InjectOptions & { token?: string }): Promise<Res>;
  /** A vault created through the application layer (as `coffer vault create` does). */
  vault(name: string): Promise<Vault>;
  /** A small real source directory protected as an item. */
  item(name: string, vault: string, files?: Record<string, string>): Promise<Item>;
  /** Closes the current server and builds a fresh one on the same app (new auth cache). */
  rebuild(opts?: { draining?: () => boolean }): Promise<HttpServer>;
  /** Runs every queued job to its end with a draining worker pool. */
  drain(): Promise<void>;
  /** A job admitted straight into in_progress under a live lease held by `owner`. */
  running(itemId: string, vaultId: string, owner?: string): Promise<Job>;
  /** A backup job that ended `completed` (without data: only its catalog row). */
  completed(itemId: string, vaultId: string): Promise<Job>;
  close(): Promise<void>;
}

const ZERO = {
  filesDone: 0,
  filesTotal: 0,
  bytesDone: 0,
  bytesTotal: 0,
  bytesScanned: 0,
  bytesNew: 0,
  bytesStored: 0,
  etaSeconds: null,
};

export async function createHttpWorld(
  dialect: 'sqlite' | 'postgres',
  opts: { beforeBuild?: (app: AppContext) => Promise<void> } = {},
): Promise<HttpWorld> {
  const tc = await createTestCatalog(dialect);
  const root = await mkdtemp(join(tmpdir(), 'coffer-http-'));
  const app = await openApp(loadConfig({ ...tc.env, COFFER_PASSWORD: PASSWORD }));
  await opts.beforeBuild?.(app);
  const metrics = new Metrics(app.store);
  const logger = createLogger('silent');
  let http = await buildServer({ app, metrics, logger });
  await http.api.ready();

  const world: HttpWorld = {
    tc,
    app,
    metrics,
    root,
    get http() {
      return http;
    },
    async req({ token, ...o }) {
      const headers = { ...(o.headers ?? {}) };
      if (token) headers.authorization = `Bearer ${token}`;
      const r = await http.api.inject({ ...o, headers });
      let parsed: unknown;
      try {
        parsed = r.body ? JSON.parse(r.body) : undefined;
      } catch {
        parsed = undefined;
      }
      return { status: r.statusCode, headers: r.headers, body: r.body, json: parsed };
    },
    async vault(name) {
      return createVault(app, name, join(root, 'vaults', name), 'test');
    },
    async item(name, vault, files = { 'a.txt': `${name} a\n`, 'sub/b.txt': `${name} b\n` }) {
      const dir = join(root, 'sources', name);
      for (const [rel, text] of Object.entries(files)) {
        await mkdir(join(dir, rel, '..'), { recursive: true });
        await writeFile(join(dir, rel), text);
      }
      await mkdir(dir, { recursive: true });
      return addItem(app, { name, vaultRef: vault, path: dir }, 'test');
    },
    async rebuild(o = {}) {
      await http.api.close();
      http = await buildServer({ app, metrics, logger, ...(o.draining ? { draining: o.draining } : {}) });
      await http.api.ready();
      return http;
    },
    async drain() {
      const pool = startWorkerPool(app, {
        concurrency: 1,
        drain: true,
        signal: new AbortController().signal,
      });
      await pool.done;
    },
    async running(itemId, vaultId, owner = 'test-worker') {
      const a = await app.store.admit({
        operation: 'backup',
        itemId,
        vaultId,
        trigger: 'on-demand',
        requestedBy: 'test',
        claimBy: { owner, leaseMs: 60_000 },
      });
      return a.job;
    },
    async completed(itemId, vaultId) {
      const a = await app.store.admit({
        operation: 'backup',
        itemId,
        vaultId,
        trigger: 'on-demand',
        requestedBy: 'test',
        claimBy: { owner: 'test-worker', leaseMs: 60_000 },
      });
      await app.store.finish(a.lease!, { state: 'completed', progress: ZERO });
      return app.store.getJob(a.job.id);
    },
    async close() {
      await http.api.close();
      await app.close();
      await tc.cleanup();
      await rm(root, { recursive: true, force: true });
    },
  };
  return world;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  recommendedSteps: string[];
  docs: { title: string; href: string }[];
  retryable: boolean;
  field?: string;
  [k: string]: unknown;
}

/** Asserts an RFC 9457 problem with a catalog code; returns its body. */
export function assertProblem(r: Res, status: number, code?: string): ProblemBody {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.body.slice(0, 500)}`);
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/, r.body.slice(0, 200));
  const p = r.json as ProblemBody;
  assert.ok(p && typeof p === 'object', `problem body is not JSON: ${r.body.slice(0, 200)}`);
  assert.ok((ERROR_CODES as readonly string[]).includes(p.code), `unknown code ${p.code}`);
  if (code) assert.equal(p.code, code, p.detail);
  assert.equal(p.status, status);
  assert.equal(typeof p.title, 'string');
  assert.equal(typeof p.detail, 'string');
  assert.ok(Array.isArray(p.recommendedSteps) && p.recommendedSteps.length > 0, 'recommendedSteps');
  return p;
}

/** A well-formed job id that names no job. */
export const MISSING_JOB = 'j_0000000000000000';
