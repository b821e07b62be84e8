/**
 * A load-generating client process for the API benchmarks: waits for "go" on stdin, then
 * POSTs backup triggers for items FIRST..LAST-1 (`item-N`) with CONCURRENCY requests in flight,
 * and prints one JSON line: statuses and latencies.
 *
 *   node dist/bench/api-client.js URL FIRST LAST CONCURRENCY
 */
const [url, firstArg, lastArg, concArg] = process.argv.slice(2);
const first = Number(firstArg);
const last = Number(lastArg);
const concurrency = Number(concArg);
process.stdout.write('ready\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
const latencies: number[] = [];
const statuses: Record<string, number> = {};
let next = first;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < last) {
      const i = next++;
      const s = performance.now();
      const res = await fetch(`${url}/api/v1/items/item-${i}/backups`, { method: 'POST' });
      await res.arrayBuffer();
      latencies.push(performance.now() - s);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
  }),
);
process.stdout.write(JSON.stringify({ elapsedMs: performance.now() - t0, statuses, latencies }) + '\n');
