/**
 * Admission over HTTP (issue: coffer serve). Against a real `coffer serve --workers 0`:
 *  (a) throughput: triggers at distinct items from several client processes;
 *  (b) 1,000 concurrent triggers at one item from several client processes: exactly one 202,
 *      the rest 409, with latency percentiles.
 *
 *   npm run build && node dist/bench/api-admission.js [--pg] [--items 6000] [--clients 4] [--rounds 3]
 */
import { parseArgs } from 'node:util';
import {
  benchCatalog,
  bulkItems,
  median,
  ms,
  percentiles,
  runClients,
  startServe,
  stop,
} from './api-harness.js';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean', default: false },
    items: { type: 'string', default: '6000' },
    clients: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
  },
});
const dialect = values.pg ? 'postgres' : 'sqlite';
const ITEMS = Number(values.items);
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);

interface ClientReport {
  elapsedMs: number;
  statuses: Record<string, number>;
  latencies: number[];
}

const rates: number[] = [];
const stormP99: number[] = [];
const stormP50: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const b = await benchCatalog(dialect);
  const vault = await b.store.createVault({
    name: 'bench',
    location: '/nonexistent/bench',
    repositoryId: 'bench',
  });
  await bulkItems(b, ITEMS + 1, vault.id);
  const server = await startServe(b.env, ['--workers', '0', '--no-scheduler']);
  // Warm up the server's code paths and connections (not counted).
  await fetch(`${server.url}/api/v1/items/item-${ITEMS}/backups`, { method: 'POST' });

  const per = Math.ceil(ITEMS / CLIENTS);
  const reports = await runClients<ClientReport>(
    'api-client.js',
    Array.from({ length: CLIENTS }, (_, c) => [
      server.url,
      String(c * per),
      String(Math.min(ITEMS, (c + 1) * per)),
      '32',
    ]),
  );
  const accepted = reports.reduce((s, r) => s + (r.statuses['202'] ?? 0), 0);
  const elapsed = Math.max(...reports.map((r) => r.elapsedMs));
  if (accepted !== ITEMS)
    throw new Error(`expected ${ITEMS} admissions, got ${JSON.stringify(reports.map((r) => r.statuses))}`);
  rates.push((ITEMS / elapsed) * 1000);

  // (b) one item, 1,000 triggers at once from CLIENTS processes.
  const one = await runClients<{ accepted: string[]; other: string[]; latencies: number[] }>(
    '../test/system/fixtures/http-storm.js',
    Array.from({ length: CLIENTS }, () => [server.url, 'item-0', String(1000 / CLIENTS)]),
  );
  // item-0 already has an active job from (a): every one of these must be refused...
  const refusedAll =
    one.reduce((s, r) => s + r.accepted.length, 0) === 0 && one.every((r) => r.other.length === 0);
  if (!refusedAll)
    throw new Error(
      `storm at a busy item admitted or failed: ${JSON.stringify(one.map((r) => [r.accepted.length, r.other.slice(0, 3)]))}`,
    );
  const p = percentiles(one.flatMap((r) => r.latencies));
  stormP50.push(p.p50);
  stormP99.push(p.p99);
  await stop(server.child);
  await b.close();
  console.log(
    `round ${round + 1}: ${rates[rates.length - 1]!.toFixed(0)} admissions/s; storm p50 ${ms(p.p50)} p99 ${ms(p.p99)}`,
  );
}

// (b') exactly one 202 out of 1,000 at a free item.
const b = await benchCatalog(dialect);
const vault = await b.store.createVault({
  name: 'bench',
  location: '/nonexistent/bench',
  repositoryId: 'bench',
});
await bulkItems(b, 1, vault.id);
const server = await startServe(b.env, ['--workers', '0', '--no-scheduler']);
const free = await runClients<{
  accepted: string[];
  blockers: string[];
  other: string[];
  latencies: number[];
}>(
  '../test/system/fixtures/http-storm.js',
  Array.from({ length: CLIENTS }, () => [server.url, 'item-0', String(1000 / CLIENTS)]),
);
const accepted = free.flatMap((r) => r.accepted);
const refused = 1000 - accepted.length - free.flatMap((r) => r.other).length;
const pf = percentiles(free.flatMap((r) => r.latencies));
await stop(server.child);
await b.close();

console.log(
  `\n| catalog | admissions/s, distinct items (median of ${ROUNDS}) | 1,000 triggers at one busy item, p50 / p99 (median of ${ROUNDS}) | 1,000 at one free item: 202 / 409, p50 / p99 |`,
);
console.log('| --- | --- | --- | --- |');
console.log(
  `| ${dialect} | ${median(rates).toFixed(0)} | ${ms(median(stormP50))} / ${ms(median(stormP99))} | ${accepted.length} / ${refused}, ${ms(pf.p50)} / ${ms(pf.p99)} |`,
);
if (accepted.length !== 1) process.exitCode = 1;
