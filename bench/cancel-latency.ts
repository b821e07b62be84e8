/**
 * Cancel latency across processes (issue: coffer serve). One `coffer serve --workers 0` takes
 * the HTTP requests; a separate `coffer worker` process runs the backups. Each round triggers a
 * backup of a real random tree (read-limited so it is still running), waits until the job is
 * `in_progress` and has read something, then POSTs the cancel to the server and measures, from
 * the moment the cancel is sent, how long until the job row says `cancelled` (observed by
 * polling the API every 10 ms, so the figure includes up to 10 ms of observation delay).
 *
 *   npm run build --silent && node dist/bench/cancel-latency.js [--pg] [--rounds 40]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createVault } from '../src/app/vaults.js';
import {
  addItems,
  createBenchCatalog,
  fmtMs,
  nowMs,
  percentiles,
  startServe,
  startWorker,
  table,
} from './lib/bench-catalog.js';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '40' },
  },
});
const ROUNDS = Number(values.rounds);

interface JobBody {
  id: string;
  state: string;
  progress?: { bytesDone?: number };
}

const bc = await createBenchCatalog(values.pg);
const log = (s: string) => process.stderr.write(`${s}\n`);
try {
  await createVault(bc.app, 'bench', join(bc.home, 'vault'), 'bench');
  await addItems(bc, 'bench', ['slow'], 1);
  // 64 files of 1 MiB random data: incompressible, so the read limit alone sets the pace.
  const src = join(bc.home, 'sources', 'slow');
  await mkdir(src, { recursive: true });
  for (let i = 0; i < 64; i++) await writeFile(join(src, `f${i}.bin`), randomBytes(1 << 20));

  const server = await startServe(bc, ['--workers', '0', '--no-scheduler']);
  const worker = startWorker(bc, ['--concurrency', '1']);
  const api = async (
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: JobBody }> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as JobBody };
  };
  const latencies: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const t = await api('POST', '/api/v1/items/slow/backups', { limitReadBytesPerSec: 4 << 20 });
      if (t.status !== 202) throw new Error(`trigger answered ${t.status}: ${JSON.stringify(t.body)}`);
      const id = t.body.id;
      // Running, and past the first reads: the cancel then has to stop real work.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const j = (await api('GET', `/api/v1/jobs/${id}`)).body;
        if (j.state === 'in_progress' && (j.progress?.bytesDone ?? 0) > 0) break;
        if (Date.now() > deadline) throw new Error(`job ${id} did not start: ${JSON.stringify(j)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const sent = nowMs();
      const c = await api('POST', `/api/v1/jobs/${id}/cancel`);
      if (c.status !== 202) throw new Error(`cancel answered ${c.status}`);
      for (;;) {
        const j = (await api('GET', `/api/v1/jobs/${id}`)).body;
        if (j.state === 'cancelled') break;
        if (j.state !== 'cancelling' && j.state !== 'in_progress')
          throw new Error(`job ${id} ended ${j.state}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      latencies.push(nowMs() - sent);
      log(`round ${round + 1}: cancelled in ${fmtMs(latencies[latencies.length - 1]!)}`);
    }
  } finally {
    await worker.stop();
    await server.stop();
  }
  const p = percentiles(latencies);
  console.log(`\n### ${bc.dialect}: cancel over HTTP, job running in another process, ${ROUNDS} rounds\n`);
  console.log(
    table(
      ['measurement', 'p50', 'p95', 'p99', 'max', 'target'],
      [['cancel → cancelled', fmtMs(p.p50), fmtMs(p.p95), fmtMs(p.p99), fmtMs(p.max), 'p99 ≤ 1 s']],
    ),
  );
} finally {
  await bc.close();
}
