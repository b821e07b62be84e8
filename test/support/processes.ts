/**
 * Long-running coffer processes (workers) for multi-node fault tests: started, observed through
 * their JSON log lines (pino on stderr), and stopped by signal, each by its own pid.
 */
import type { ChildProcess } from 'node:child_process';
import { type CliEnv, startCoffer } from './cli.js';

export interface LogLine {
  msg?: string;
  pid?: number;
  worker?: string;
  jobId?: string;
  state?: string;
  errorCode?: string | null;
  [key: string]: unknown;
}

export class CofferProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  stdout = '';
  /** Resolves with the exit code (or the signal) once the process is gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];
  private exitedFlag = false;

  constructor(
    readonly args: string[],
    env: CliEnv,
  ) {
    this.child = startCoffer(args, env);
    let partial = '';
    this.child.stderr?.on('data', (d: Buffer) => {
      const text = d.toString();
      this.stderr += text;
      partial += text;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        if (!line.startsWith('{')) continue;
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          /* not a log line */
        }
      }
      this.wake();
    });
    this.child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exitedFlag = true;
        this.wake();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return !this.exitedFlag;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The first log line that matches, waiting for it until the deadline (or the process's exit). */
  async waitForLog(what: string, match: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.exitedFlag)
        throw new Error(`${this.describe()} exited before logging ${what}\n${this.stderr.slice(-4000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${this.describe()} to log ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  describe(): string {
    return `coffer ${this.args.join(' ')} (pid ${this.child.pid})`;
  }
}

/** A `coffer worker`, resolved once it has connected and logged that it started. */
export async function startWorker(env: CliEnv, extraArgs: string[] = []): Promise<CofferProcess> {
  const p = new CofferProcess(['worker', ...extraArgs], env);
  await p.waitForLog('worker started', (l) => l.msg === 'worker started', 60_000);
  return p;
}

/** The worker id (host:pid:start) a process logged, for matching jobs' worker_id. */
export function workerIdOf(p: CofferProcess): string {
  const started = p.lines.find((l) => l.msg === 'worker started');
  if (!started?.worker) throw new Error(`${p.describe()} has not logged its worker id`);
  return started.worker;
}

/** Stops a process by signal and waits for it, escalating to SIGKILL after graceMs. */
export async function stopProcess(p: CofferProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000) {
  if (!p.alive) return p.exited;
  p.kill(signal);
  const timer = setTimeout(() => p.kill('SIGKILL'), graceMs);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}
