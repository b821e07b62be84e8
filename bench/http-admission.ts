/**
 * Admission over HTTP (SPEC §2 exclusivity rule, §4 HTTP API), against real
 * `coffer serve --workers 0` child processes (--servers N share one catalog, as in a multi-node
 * set-up; client processes are spread over them):
 *  (a) throughput: backup triggers at distinct items from K client processes, keep-alive
 *      connections, C requests in flight each; every one must be a 202;
 *  (b) storm: 1,000 triggers at one free item from several client processes released together;
 *      exactly one 202, 999 × 409 UserErrorBackupOperationInProgress naming that job;
 *  (c) the same 1,000 repeat triggers at another item as a stream, a few in flight per client.
 * Each measurement runs after an untimed warm-up round, for --rounds rounds; medians reported.
 *
 *   npm run build --silent && node dist/bench/http-admission.js [--pg] [--items 5000] [--rounds 3]
 *     [--clients 4] [--concurrency 16] [--storm 1000] [--storm-clients 4] [--paced-concurrency 4]
 *     [--servers 1] [--cpu-prof DIR]
 * PostgreSQL with --pg or COFFER_BENCH_DATABASE_URL (admin URL; a fresh database is created and dropped).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createVault } from '../src/app/vaults.js';
import {
  addItems,
  cpuMsOf,
  createBenchCatalog,
  fmtMs,
  median,
  nowMs,
  percentiles,
  startServe,
  table,
  type Percentiles,
} from './lib/bench-catalog.js';
import type { LoadTask } from './lib/load-client.js';
import { aggregate, runLoad } from './lib/load-clients.js';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean', default: false },
    items: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '16' },
    storm: { type: 'string', default: '1000' },
    'storm-clients': { type: 'string', default: '4' },
    'paced-concurrency': { type: 'string', default: '4' },
    servers: { type: 'string', default: '1' },
    'cpu-prof': { type: 'string' },
  },
});
const ITEMS = Number(values.items);
const ROUNDS = Number(values.rounds);
const CLIENTS = Number(values.clients);
const CONCURRENCY = Number(values.concurrency);
const STORM = Number(values.storm);
const STORM_CLIENTS = Number(values['storm-clients']);
const PACED = Number(values['paced-concurrency']);
/** `coffer serve` processes sharing the catalog; client c talks to server c mod SERVERS. */
const SERVERS = Number(values.servers);
const WARMUP_ITEMS = Math.min(ITEMS, 1000);

const bc = await createBenchCatalog(values.pg);
const log = (s: string) => process.stderr.write(`${s}\n`);
try {
  const t0 = nowMs();
  await createVault(bc.app, 'bench', join(bc.home, 'vault'), 'bench');
  const spreadNames = (round: number) =>
    Array.from({ length: round === 0 ? WARMUP_ITEMS : ITEMS }, (_, i) => `r${round}-${i}`);
  const names: string[] = [];
  for (let r = 0; r <= ROUNDS; r++) names.push(...spreadNames(r), `storm-${r}`, `paced-${r}`);
  await addItems(bc, 'bench', names, bc.dialect === 'postgres' ? 8 : 1);
  log(`${bc.dialect}: ${names.length} items in ${((nowMs() - t0) / 1000).toFixed(1)} s`);

  const nodeArgs = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : [];
  const servers = await Promise.all(
    Array.from({ length: SERVERS }, () => startServe(bc, ['--workers', '0'], nodeArgs)),
  );
  for (const s of servers) log(`coffer serve at ${s.url} (logs: ${s.logFile})`);
  const urlFor = (client: number) => servers[client % SERVERS]!.url;
  /** CPU time of every server process so far. */
  const serversCpuMs = () => servers.reduce((sum, s) => sum + cpuMsOf(s.child.pid!), 0);

  const body = '{}';
  const rates: number[] = [];
  const spreadLat: Percentiles[] = [];
  const storms: (Percentiles & { wallMs: number })[] = [];
  const paceds: (Percentiles & { wallMs: number })[] = [];
  const cpus: { spread: number; storm: number }[] = [];
  /** STORM triggers at one free item from STORM_CLIENTS processes; checks exactly one 202. */
  const runStorm = async (item: string, tag: string, concurrency: number | undefined) => {
    const per = Math.ceil(STORM / STORM_CLIENTS);
    const stormTasks: LoadTask[] = Array.from({ length: STORM_CLIENTS }, (_, c) => ({
      mode: 'storm',
      url: urlFor(c),
      path: `/api/v1/items/${item}/backups`,
      count: Math.min(per, STORM - c * per),
      body,
      ...(concurrency ? { concurrency } : {}),
    }));
    const results = await runLoad(stormTasks);
    const storm = aggregate(results);
    const accepted = results.flatMap((r) => r.accepted);
    const blockers = new Set(results.flatMap((r) => r.blockers));
    const codes = new Set(results.flatMap((r) => r.codes));
    const errors = results.flatMap((r) => r.errors);
    const ok =
      storm.statuses['202'] === 1 &&
      storm.statuses['409'] === STORM - 1 &&
      accepted.length === 1 &&
      blockers.size === 1 &&
      blockers.has(accepted[0]!) &&
      codes.size === 1 &&
      codes.has('UserErrorBackupOperationInProgress');
    if (!ok)
      throw new Error(
        `${tag}: storm of ${STORM} at one item: statuses ${JSON.stringify(storm.statuses)}, accepted ${JSON.stringify(accepted)}, 409s named ${JSON.stringify([...blockers])} with codes ${JSON.stringify([...codes])}; errors ${JSON.stringify(errors.slice(0, 3))}`,
      );
    return storm;
  };
  try {
    for (let round = 0; round <= ROUNDS; round++) {
      const tag = round === 0 ? 'warm-up' : `round ${round}`;
      // (a) distinct items, split evenly over the clients.
      const paths = spreadNames(round).map((n) => `/api/v1/items/${n}/backups`);
      const tasks: LoadTask[] = Array.from({ length: CLIENTS }, (_, c) => ({
        mode: 'spread',
        url: urlFor(c),
        paths: paths.filter((_, i) => i % CLIENTS === c),
        concurrency: CONCURRENCY,
        body,
      }));
      const cpu0 = serversCpuMs();
      const spread = aggregate(await runLoad(tasks));
      if (spread.statuses['202'] !== paths.length)
        throw new Error(`${tag}: expected ${paths.length} × 202, got ${JSON.stringify(spread.statuses)}`);
      const rate = (spread.total / spread.wallMs) * 1000;
      const sp = percentiles(spread.latencies);

      const spreadCpu = (serversCpuMs() - cpu0) / paths.length;

      // (b) the storm at one free item, all at once; (c) the same at another item with a few
      // requests in flight per client (a sustained stream of repeat triggers).
      const cpu1 = serversCpuMs();
      const storm = await runStorm(`storm-${round}`, tag, undefined);
      const stormCpu = (serversCpuMs() - cpu1) / STORM;
      const paced = await runStorm(`paced-${round}`, `${tag} (paced)`, PACED);
      const st = { ...percentiles(storm.latencies), wallMs: storm.wallMs };
      const pc = { ...percentiles(paced.latencies), wallMs: paced.wallMs };
      log(
        `${tag}: ${rate.toFixed(0)} admissions/s (${paths.length} in ${(spread.wallMs / 1000).toFixed(2)} s, p50 ${fmtMs(sp.p50)}, p99 ${fmtMs(sp.p99)}, server CPU ${fmtMs(spreadCpu)} each); ` +
          `storm 1×202 + ${STORM - 1}×409 in ${fmtMs(st.wallMs)}, p50 ${fmtMs(st.p50)}, p99 ${fmtMs(st.p99)}, max ${fmtMs(st.max)}, server CPU ${fmtMs(stormCpu)} each; ` +
          `paced (${STORM_CLIENTS}×${PACED} in flight) p50 ${fmtMs(pc.p50)}, p99 ${fmtMs(pc.p99)}`,
      );
      if (round === 0) continue;
      rates.push(rate);
      spreadLat.push(sp);
      storms.push(st);
      paceds.push(pc);
      cpus.push({ spread: spreadCpu, storm: stormCpu });
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }

  const target = bc.dialect === 'sqlite' ? '≤ 20 ms' : '≤ 40 ms';
  const cells = (xs: number[], f: (x: number) => string) => [...xs.map(f), f(median(xs))];
  const rounds = Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`);
  console.log(
    `\n### ${bc.dialect}, ${SERVERS} × coffer serve: ${CLIENTS} clients × ${CONCURRENCY} in flight over ${ITEMS} distinct items; storm of ${STORM} from ${STORM_CLIENTS} clients\n`,
  );
  console.log(
    table(
      ['measurement', ...rounds, 'median', 'target'],
      [
        [
          'admissions/s, distinct items',
          ...cells(rates, (x) => x.toFixed(0)),
          bc.dialect === 'sqlite' ? '≥ 3,000/s' : '—',
        ],
        [
          'admission latency p50',
          ...cells(
            spreadLat.map((p) => p.p50),
            fmtMs,
          ),
          '',
        ],
        [
          'admission latency p99',
          ...cells(
            spreadLat.map((p) => p.p99),
            fmtMs,
          ),
          '',
        ],
        [`storm: 202 / 409`, ...storms.map(() => `1 / ${STORM - 1}`), `1 / ${STORM - 1}`, `1 / ${STORM - 1}`],
        [
          'storm latency p50',
          ...cells(
            storms.map((p) => p.p50),
            fmtMs,
          ),
          '',
        ],
        [
          'storm latency p95',
          ...cells(
            storms.map((p) => p.p95),
            fmtMs,
          ),
          '',
        ],
        [
          'storm latency p99',
          ...cells(
            storms.map((p) => p.p99),
            fmtMs,
          ),
          target,
        ],
        [
          'storm latency max',
          ...cells(
            storms.map((p) => p.max),
            fmtMs,
          ),
          '',
        ],
        [
          `repeat triggers at one item, ${STORM_CLIENTS} × ${PACED} in flight: p50`,
          ...cells(
            paceds.map((p) => p.p50),
            fmtMs,
          ),
          '',
        ],
        [
          `repeat triggers at one item, ${STORM_CLIENTS} × ${PACED} in flight: p99`,
          ...cells(
            paceds.map((p) => p.p99),
            fmtMs,
          ),
          target,
        ],
        [
          'server CPU per admission (202)',
          ...cells(
            cpus.map((c) => c.spread),
            fmtMs,
          ),
          '',
        ],
        [
          'server CPU per refused trigger (409)',
          ...cells(
            cpus.map((c) => c.storm),
            fmtMs,
          ),
          '',
        ],
        [
          'storm wall time (first sent → last answered)',
          ...cells(
            storms.map((p) => p.wallMs),
            fmtMs,
          ),
          '',
        ],
      ],
    ),
  );
} finally {
  await bc.close();
}
