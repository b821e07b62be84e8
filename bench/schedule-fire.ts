/**
 * Scheduling benchmark (issue: policies and schedules): N items share a schedule that comes
 * due once; S real `coffer serve --workers 0` processes run their schedulers against one
 * catalog. Reports how late each item's run was created after its due time (max, p99, p50)
 * and checks that each item fired exactly once.
 *
 *   npm run build && node dist/bench/schedule-fire.js [--items 10000] [--servers 2] [--pg]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { openCatalog } from '../src/catalog/connect.js';
import { migrate } from '../src/catalog/migrations.js';
import { CatalogStore } from '../src/catalog/store.js';
import { systemClock } from '../src/jobs/clock.js';
import { newId } from '../src/jobs/ids.js';
import { createTestCatalog } from '../test/support/catalogs.js';
import { COFFER_BIN } from '../test/support/cli.js';

const { values } = parseArgs({
  options: {
    items: { type: 'string', default: '10000' },
    servers: { type: 'string', default: '2' },
    pg: { type: 'boolean', default: false },
  },
});
const ITEMS = Number(values.items);
const SERVERS = Number(values.servers);
const dialect = values.pg ? 'postgres' : 'sqlite';

const tc = await createTestCatalog(dialect);
const catalog = await openCatalog({ home: tc.home, databaseUrl: tc.databaseUrl });
await migrate(catalog);
const store = new CatalogStore(catalog, systemClock);
const vault = await store.createVault({
  name: 'bench',
  location: '/nonexistent/bench-vault',
  repositoryId: 'bench',
});

// Due 25 s from now, on a whole second, so setup and server start-up finish before it.
const due = Math.ceil((Date.now() + 25_000) / 1000) * 1000;
const d = new Date(due);
const policy = await store.createPolicy({
  name: 'bench',
  schedule: `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} ${d.getUTCDate()} ${d.getUTCMonth() + 1} *`,
  timezone: 'UTC',
  jitterSeconds: 0,
  retention: {},
  overlap: 'skip',
  catchUpMs: 3600_000,
  paused: false,
  limitReadBytesPerSec: null,
});
const t0 = Date.now();
for (let i = 0; i < ITEMS; i += 500) {
  const now = Date.now();
  const rows = Array.from({ length: Math.min(500, ITEMS - i) }, (_, k) => ({
    id: newId('i', now),
    name: `item-${i + k}`,
    vault_id: vault.id,
    source_path: `/data/item-${i + k}`,
    policy_id: policy.id,
    previous_vault_id: null,
    created_at: now,
    updated_at: now,
  }));
  await catalog.db.insertInto('items').values(rows).execute();
}
console.log(`${dialect}: ${ITEMS} items created in ${Date.now() - t0} ms; due at ${d.toISOString()}`);

const env = { ...process.env, ...tc.env, COFFER_PASSWORD: 'bench', COFFER_LOG_LEVEL: 'warn' };
const servers: ChildProcess[] = [];
for (let i = 0; i < SERVERS; i++) {
  servers.push(
    spawn(process.execPath, [COFFER_BIN, 'serve', '--port', '0', '--workers', '0'], {
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
}
// Watch from outside: when does each run become visible (committed) in the catalog?
const visibleAt: number[] = [];
let seen = 0;
while (Date.now() < due + 10_000 && seen < ITEMS) {
  const row = await catalog.db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('trigger', '=', 'schedule')
    .executeTakeFirstOrThrow();
  const n = Number(row.n);
  for (let k = seen; k < n; k++) visibleAt.push(Date.now() - due);
  seen = n;
  await new Promise((r) => setTimeout(r, 20));
}
for (const s of servers) s.kill('SIGTERM');
await Promise.all(servers.map((s) => new Promise((r) => s.on('close', r))));

const jobs = await catalog.db
  .selectFrom('jobs')
  .select(['item_id', 'created_at', 'scheduled_for', 'state'])
  .where('trigger', '=', 'schedule')
  .execute();
const perItem = new Map<string, number>();
for (const j of jobs) perItem.set(j.item_id!, (perItem.get(j.item_id!) ?? 0) + 1);
// Lateness = when the run was visible in the catalog, measured by polling every 20 ms.
const lateness = visibleAt.sort((a, b) => a - b);
const pct = (q: number) => lateness[Math.min(lateness.length - 1, Math.floor(q * lateness.length))] ?? NaN;
const twice = [...perItem.values()].filter((n) => n > 1).length;
console.log(
  `| ${dialect} | ${ITEMS} items | ${SERVERS} servers | fired ${perItem.size} | fired twice ${twice} | lateness p50 ${pct(0.5)} ms | p99 ${pct(0.99)} ms | max ${lateness[lateness.length - 1]} ms |`,
);
await catalog.close();
await tc.cleanup();
if (perItem.size !== ITEMS || twice > 0) process.exitCode = 1;
