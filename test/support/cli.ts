/** Runs the real `coffer` CLI as a child process, the way an operator or a script does. */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/support/cli.js -> repo root
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const COFFER_BIN = join(REPO_ROOT, 'bin', 'coffer.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export type CliEnv = Record<string, string | undefined>;

function childEnv(env: CliEnv): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  // The parent's catalog settings must never leak into a test's child.
  delete base.COFFER_DATABASE_URL;
  delete base.COFFER_HOME;
  delete base.COFFER_PASSWORD;
  delete base.COFFER_LEASE_SECONDS;
  return { ...base, ...env };
}

export function startCoffer(args: string[], env: CliEnv): ChildProcess {
  return spawn(process.execPath, [COFFER_BIN, ...args], {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function coffer(args: string[], env: CliEnv, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  return collect(startCoffer(args, env), opts.timeoutMs ?? 120_000);
}

export function collect(child: ChildProcess, timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`coffer ${child.spawnargs.slice(2).join(' ')} timed out after ${timeoutMs}ms\n${stderr}`),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Parses --json output, with the whole output in the error when it is not JSON. */
export function json<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`expected JSON, got exit ${r.code}:\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
