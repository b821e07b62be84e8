/**
 * Backup throughput of a multi-node set-up (issue 7): two items backed up at once by one
 * `coffer worker` process, then two other items of the same shape by two worker processes
 * sharing the catalog (as two hosts would). Each phase has its own vault and its own freshly
 * generated data, so nothing deduplicates across phases; phases alternate over --rounds.
 *
 *   npm run build --silent && node dist/bench/worker-backup.js [--pg] [--mb 150] [--rounds 2]
 *
 * Each source is 60 % compressible text-like data and 40 % random bytes, in 2 MiB files.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { triggerBackup } from '../src/app/triggers.js';
import { addItem, createVault } from '../src/app/vaults.js';
import { createBenchCatalog, median, nowMs, startWorker, table } from './lib/bench-catalog.js';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean', default: false },
    mb: { type: 'string', default: '150' },
    rounds: { type: 'string', default: '2' },
  },
});
const MB = Number(values.mb);
const ROUNDS = Number(values.rounds);
const FILE = 2 * 1024 * 1024;
const WORDS = ['vault', 'backup', 'lease', 'chunk', 'pack', 'restore', 'policy', 'worker', 'item', 'job'];

/** Fresh content per call, so no two sources share chunks. */
async function makeSource(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const files = Math.ceil((MB * 1e6) / FILE);
  for (let i = 0; i < files; i++) {
    const buf = randomBytes(FILE);
    // The first 60 % becomes word salad (compresses about 3:1), the rest stays random.
    const textEnd = Math.floor(FILE * 0.6);
    for (let o = 0; o < textEnd;) {
      const w = WORDS[buf[o]! % WORDS.length]!;
      o += buf.write(`${w} `, o, 'latin1');
    }
    await writeFile(join(dir, `f${i}.bin`), buf);
  }
  return files * FILE;
}

const bc = await createBenchCatalog(values.pg);
const log = (s: string) => process.stderr.write(`${s}\n`);
const results: Record<'one' | 'two', number[]> = { one: [], two: [] };
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const phase of ['one', 'two'] as const) {
      const vault = `v-${phase}-${round}`;
      await createVault(bc.app, vault, join(bc.home, vault), 'bench');
      let bytes = 0;
      const items: string[] = [];
      for (const k of ['a', 'b']) {
        const name = `${phase}-${round}-${k}`;
        const dir = join(bc.home, 'sources', name);
        bytes += await makeSource(dir);
        await addItem(bc.app, { name, vaultRef: vault, path: dir }, 'bench');
        items.push(name);
      }
      const workers = Array.from({ length: phase === 'one' ? 1 : 2 }, () =>
        // One process runs both jobs at once in the first phase; one job per process in the second.
        startWorker(bc, ['--concurrency', phase === 'one' ? '2' : '1']),
      );
      try {
        const t0 = nowMs();
        const jobs = await Promise.all(items.map((i) => triggerBackup(bc.app, i, { requestedBy: 'bench' })));
        const hosts = new Set<string>();
        for (const j of jobs) {
          for (;;) {
            const job = await bc.app.store.getJob(j.job.id);
            if (job.state === 'completed') {
              if (job.workerId) hosts.add(job.workerId.split('#')[0]!);
              break;
            }
            if (!['queued', 'in_progress'].includes(job.state))
              throw new Error(`job ${job.id} ended ${job.state}: ${job.errorMessage ?? ''}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        const sec = (nowMs() - t0) / 1000;
        const rate = bytes / 1e6 / sec;
        results[phase].push(rate);
        log(
          `round ${round}, ${phase === 'one' ? '1 worker process × 2 jobs' : '2 worker processes × 1 job'}: ${(bytes / 1e6).toFixed(0)} MB in ${sec.toFixed(1)} s = ${rate.toFixed(0)} MB/s (jobs ran in ${hosts.size} process(es))`,
        );
      } finally {
        await Promise.all(workers.map((w) => w.stop()));
      }
    }
  }
  console.log(`\n### ${bc.dialect}: two first backups of ${MB} MB each at once\n`);
  const rounds = Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`);
  console.log(
    table(
      ['set-up', ...rounds, 'median'],
      [
        [
          '1 worker process, --concurrency 2 (MB/s)',
          ...[...results.one, median(results.one)].map((x) => x.toFixed(0)),
        ],
        [
          '2 worker processes, --concurrency 1 (MB/s)',
          ...[...results.two, median(results.two)].map((x) => x.toFixed(0)),
        ],
      ],
    ),
  );
} finally {
  await bc.close();
}
