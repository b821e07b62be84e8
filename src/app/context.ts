/**
 * The composition root: one catalog, one store, one clock, one worker identity per process.
 * The CLI builds it now; the HTTP server will build the same thing.
 */
import { hostname } from 'node:os';
import { openCatalog, type Catalog } from '../catalog/connect.js';
import { migrate } from '../catalog/migrations.js';
import { CatalogStore } from '../catalog/store.js';
import { systemClock, type Clock } from '../jobs/clock.js';
import { readPassword, type Config } from './config.js';

export interface AppContext {
  config: Config;
  catalog: Catalog;
  store: CatalogStore;
  clock: Clock;
  /** host:pid:start — names this process on every job it holds. */
  workerId: string;
  password(): string;
  close(): Promise<void>;
}

export async function openApp(config: Config, clock: Clock = systemClock): Promise<AppContext> {
  const catalog = await openCatalog({
    home: config.home,
    databaseUrl: config.databaseUrl,
    poolSize: config.dbPoolSize,
  });
  try {
    await migrate(catalog);
  } catch (err) {
    await catalog.close();
    throw err;
  }
  const store = new CatalogStore(catalog, clock);
  let cachedPassword: string | undefined;
  return {
    config,
    catalog,
    store,
    clock,
    workerId: `${hostname()}:${process.pid}:${Date.now().toString(36)}`,
    password: () => (cachedPassword ??= readPassword(config)),
    close: () => catalog.close(),
  };
}
