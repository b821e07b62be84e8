/** An in-process coffer HTTP API on a real catalog, driven with Fastify's inject(). */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/app/config.js';
import { openApp, type AppContext } from '../../src/app/context.js';
import { addItem, createVault } from '../../src/app/vaults.js';
import { buildServer, type HttpServer } from '../../src/http/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createTestCatalog, type TestCatalog } from './catalogs.js';
import { makeRandomTree } from './world.js';

export interface ApiWorld {
  app: AppContext;
  http: HttpServer;
  root: string;
  tc: TestCatalog;
  /** Creates a vault and items with small real source trees. */
  seed(vault: string, items: string[]): Promise<void>;
  close(): Promise<void>;
}

export async function createApiWorld(dialect: 'sqlite' | 'postgres'): Promise<ApiWorld> {
  const tc = await createTestCatalog(dialect);
  const root = await mkdtemp(join(tmpdir(), 'coffer-api-'));
  const app = await openApp(loadConfig({ ...tc.env, COFFER_PASSWORD: 'api-test-password' }));
  const http = await buildServer({ app, metrics: new Metrics(app.store), logger: createLogger('silent') });
  await http.api.ready();
  return {
    app,
    http,
    root,
    tc,
    async seed(vault, items) {
      await createVault(app, vault, join(root, vault), 'test');
      for (const name of items) {
        const dir = join(root, 'src', name);
        await mkdir(dir, { recursive: true });
        await makeRandomTree(dir, 2, 64 * 1024);
        await addItem(app, { name, vaultRef: vault, path: dir }, 'test');
      }
    },
    async close() {
      await http.api.close();
      await app.close();
      await tc.cleanup();
      await rm(root, { recursive: true, force: true });
    },
  };
}
