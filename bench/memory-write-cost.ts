/**
 * What writing a restore's worth of bytes into memory costs on this machine: into memory the
 * guest has not used for a while, and into memory freed a moment before. Why: on this virtual
 * machine the host takes back memory the guest leaves free (virtio-balloon free page
 * reporting), and the first write to such a page costs several times a write to one in recent
 * use; a restore into tmpfs (or the page cache of a disk) writes every byte into fresh pages, so
 * which kind it gets decides much of its time, for every tool alike (docs/benchmarks.md).
 *
 *   npm run build --silent && node dist/bench/memory-write-cost.js [--dir /dev/shm] [--mb 1761] [--prefill-mb 10000]
 *
 * Fresh memory: `--prefill-mb` of new files are written first and kept, to use up memory freed
 * recently that the host has not taken back yet, then `--mb` more are written and timed, by one
 * thread and then by two (each thread its own files). Just freed: `--mb` are written, deleted,
 * and written again at once, timed. All writes are 1 MiB `pwrite`s of random bytes into new
 * files of 256 MiB; every file is deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const BLOCK = 1024 * 1024;
const FILE_BYTES = 256 * BLOCK;

interface Timing {
  wall: number;
  /** CPU time of the whole process (every thread), user and system. */
  cpu: number;
}

interface Job {
  dir: string;
  /** Names of the files to write, FILE_BYTES each (the last one shorter when `bytes` says so). */
  files: string[];
  bytes: number;
}

/** Writes the job's files one after another; the caller times it. */
function writeFiles(job: Job): void {
  const block = randomBytes(BLOCK);
  let left = job.bytes;
  for (const name of job.files) {
    const fd = openSync(join(job.dir, name), 'w');
    try {
      const size = Math.min(FILE_BYTES, left);
      for (let at = 0; at < size; at += BLOCK) writeSync(fd, block, 0, Math.min(BLOCK, size - at), at);
      left -= size;
    } finally {
      closeSync(fd);
    }
  }
}

if (!isMainThread) {
  writeFiles(workerData as Job);
  parentPort!.postMessage('done');
} else {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string', default: '/dev/shm' },
      mb: { type: 'string', default: '1761' },
      'prefill-mb': { type: 'string', default: '10000' },
    },
  });
  const bytes = Number(values.mb) * 1e6;
  const prefill = Number(values['prefill-mb']) * 1e6;
  if (!(bytes > 0) || !(prefill >= 0)) throw new Error('--mb must be above 0 and --prefill-mb at least 0');
  if (prefill + 2 * bytes > freemem() - 2e9) {
    throw new Error(`needs ${((prefill + 2 * bytes) / 1e9).toFixed(1)} GB of free memory and 2 GB to spare`);
  }
  const newDir = (): Promise<string> => mkdtemp(join(values.dir, 'coffer-write-cost-'));
  let serial = 0;
  const names = (n: number): string[] =>
    Array.from({ length: Math.ceil(n / FILE_BYTES) }, () => `f${serial++}`);

  /** Writes `total` bytes into new files in `dir` with `threads` threads, each its own files. */
  const timed = async (dir: string, total: number, threads: number): Promise<Timing> => {
    const share = Math.ceil(total / threads / BLOCK) * BLOCK;
    const jobs: Job[] = Array.from({ length: threads }, (_, i) => {
      const part = Math.max(0, Math.min(share, total - i * share));
      return { dir, files: names(part), bytes: part };
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    if (threads === 1) writeFiles(jobs[0]!);
    else {
      await Promise.all(
        jobs.map(
          (job) =>
            new Promise<void>((resolve, reject) => {
              const w = new Worker(new URL(import.meta.url), { workerData: job });
              w.once('message', () => resolve());
              w.once('error', reject);
              // A thread that dies without an error event (killed, out of memory) fails the run too.
              w.once('exit', (code) => reject(new Error(`writer thread exited with code ${code}`)));
            }),
        ),
      );
    }
    const cpu = process.cpuUsage(cpu0);
    return { wall: (performance.now() - t0) / 1000, cpu: (cpu.user + cpu.system) / 1e6 };
  };

  const rows: string[][] = [];
  const record = (what: string, r: Timing): void => {
    rows.push([
      what,
      `${(bytes / 1e6 / r.wall).toFixed(0)} MB/s`,
      `${r.wall.toFixed(2)} s`,
      `${r.cpu.toFixed(2)} s`,
    ]);
    console.error(`${what}: ${r.wall.toFixed(2)} s wall, ${r.cpu.toFixed(2)} s CPU`);
  };

  const fresh = await newDir();
  try {
    // Memory freed recently and not yet taken back by the host would make the first writes cheap.
    if (prefill > 0) await timed(fresh, prefill, 2);
    record('fresh memory, 1 thread', await timed(fresh, bytes, 1));
    record('fresh memory, 2 threads', await timed(fresh, bytes, 2));
  } finally {
    await rm(fresh, { recursive: true, force: true });
  }
  for (const threads of [1, 2]) {
    const first = await newDir();
    const again = await newDir();
    try {
      await timed(first, bytes, threads);
      await rm(first, { recursive: true, force: true });
      record(
        `memory just freed, ${threads} thread${threads === 1 ? '' : 's'}`,
        await timed(again, bytes, threads),
      );
    } finally {
      await rm(first, { recursive: true, force: true });
      await rm(again, { recursive: true, force: true });
    }
  }
  const widths = [0, 1, 2, 3].map((c) =>
    Math.max(...[['write', 'rate', 'wall', 'CPU'], ...rows].map((r) => r[c]!.length)),
  );
  const line = (r: string[]): string => `| ${r.map((v, c) => v.padEnd(widths[c]!)).join(' | ')} |`;
  console.log(`writing ${(bytes / 1e6).toFixed(0)} MB into ${values.dir} (1 MiB writes, 256 MiB files)\n`);
  console.log(line(['write', 'rate', 'wall', 'CPU']));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));
}
