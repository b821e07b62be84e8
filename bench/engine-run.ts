/**
 * Runs one benchmarked command under GNU time (`/usr/bin/time -v`): wall time measured here
 * (spawn to exit), peak RSS and CPU time from time's report (the kernel's rusage of the command).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

export interface Measure {
  /** Wall time from spawn to exit, seconds. */
  wallS: number;
  userS: number;
  sysS: number;
  /** Peak resident set size of the command (rusage ru_maxrss), bytes. */
  maxRssBytes: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

export const TIME_BIN = '/usr/bin/time';
const KEEP_OUTPUT = 256 * 1024;

function tail(s: string): string {
  return s.length > KEEP_OUTPUT ? s.slice(-KEEP_OUTPUT) : s;
}

function field(report: string, label: string): number {
  const m = new RegExp(`${label}:\\s*([0-9.]+)`).exec(report);
  return m ? Number(m[1]) : NaN;
}

/** Spawns `cmd`, keeps the tails of its output, and resolves with its exit code. */
async function capture(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string | undefined },
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout = tail(stdout + d.toString())));
  child.stderr.on('data', (d: Buffer) => (stderr = tail(stderr + d.toString())));
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  return { exitCode, stdout, stderr };
}

function failed(cmd: string, args: string[], r: { exitCode: number; stdout: string; stderr: string }): Error {
  return new Error(
    `${cmd} ${args.join(' ')} exited ${r.exitCode}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`,
  );
}

export async function timed(
  cmd: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd?: string; okCodes?: number[]; timeFile: string },
): Promise<Measure> {
  rmSync(opts.timeFile, { force: true });
  const started = performance.now();
  const r = await capture(TIME_BIN, ['-v', '-o', opts.timeFile, cmd, ...args], opts);
  const wallS = (performance.now() - started) / 1000;
  let report = '';
  try {
    report = readFileSync(opts.timeFile, 'utf8');
  } catch {
    // no report: the command could not start; the exit code says so below
  }
  if (!(opts.okCodes ?? [0]).includes(r.exitCode)) throw failed(cmd, args, r);
  return {
    wallS,
    userS: field(report, 'User time \\(seconds\\)'),
    sysS: field(report, 'System time \\(seconds\\)'),
    maxRssBytes: field(report, 'Maximum resident set size \\(kbytes\\)') * 1024,
    ...r,
  };
}

/** A command whose cost is not measured (set-up, versions); returns stdout. */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; okCodes?: number[] } = {},
): Promise<string> {
  const r = await capture(cmd, args, opts);
  if (!(opts.okCodes ?? [0]).includes(r.exitCode)) throw failed(cmd, args, r);
  return r.stdout;
}
