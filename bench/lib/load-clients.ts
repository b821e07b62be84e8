/** The parent side of load-client.js: start the clients, release them together, collect results. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromClient, LoadResult, LoadTask, ToClient } from './load-client.js';

const CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));

/** One client process per task; all of them start sending at the same instant (a barrier). */
export async function runLoad(tasks: LoadTask[]): Promise<LoadResult[]> {
  const children = tasks.map(() => fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const ready: Promise<void>[] = [];
  const results: Promise<LoadResult>[] = [];
  children.forEach((child, i) => {
    let onReady: () => void = () => undefined;
    ready.push(new Promise<void>((resolve) => (onReady = resolve)));
    results.push(
      new Promise<LoadResult>((resolve, reject) => {
        child.on('message', (m: FromClient) => {
          if (m.type === 'ready') onReady();
          else resolve(m.result);
        });
        child.once('exit', (code) => reject(new Error(`load client ${i} exited ${code}`)));
      }),
    );
    child.send({ type: 'task', task: tasks[i]! } satisfies ToClient);
  });
  await Promise.race([Promise.all(ready), Promise.all(results)]);
  for (const child of children) child.send({ type: 'go' } satisfies ToClient);
  return Promise.all(results);
}

/** Requests per second over all clients: from the first start to the last end. */
export function aggregate(results: LoadResult[]): {
  total: number;
  statuses: Record<string, number>;
  wallMs: number;
  latencies: number[];
} {
  const statuses: Record<string, number> = {};
  for (const r of results)
    for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const wallMs = Math.max(...results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt));
  return {
    total: Object.values(statuses).reduce((a, b) => a + b, 0),
    statuses,
    wallMs,
    latencies: results.flatMap((r) => r.latencies),
  };
}
