/**
 * Shows a running job's progress: a live bar on a terminal, and plain periodic lines when the
 * output is a pipe or a log file (where redrawn bars would be noise).
 */
import cliProgress from 'cli-progress';
import { progressPercent, type JobProgress } from '../jobs/job.js';
import { formatBytes, formatDuration } from './format.js';

export interface ProgressView {
  update(p: JobProgress): void;
  note(message: string): void;
  stop(): void;
}

export function createProgressView(label: string, stream: NodeJS.WriteStream = process.stderr): ProgressView {
  return stream.isTTY ? new BarView(label, stream) : new LineView(label, stream);
}

function describe(p: JobProgress): Record<string, string> {
  return {
    // Not `total`/`eta`: cli-progress reserves those names for its own counters.
    sizeDone: formatBytes(p.bytesDone),
    sizeTotal: p.bytesTotal === null ? '?' : formatBytes(p.bytesTotal),
    files: p.filesTotal === null ? `${p.filesDone}` : `${p.filesDone}/${p.filesTotal}`,
    added: formatBytes(p.bytesNew),
    timeLeft: p.etaSeconds === null ? '-' : formatDuration(p.etaSeconds * 1000),
  };
}

class BarView implements ProgressView {
  private readonly bar: cliProgress.SingleBar;
  private started = false;

  constructor(label: string, stream: NodeJS.WriteStream) {
    this.bar = new cliProgress.SingleBar(
      {
        stream,
        format: `${label} [{bar}] {percentage}% | {sizeDone}/{sizeTotal} | {files} files | new {added} | ETA {timeLeft}`,
        hideCursor: true,
        clearOnComplete: false,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(p: JobProgress): void {
    const pct = progressPercent(p) ?? 0;
    if (!this.started) {
      this.bar.start(100, pct, describe(p));
      this.started = true;
    } else this.bar.update(pct, describe(p));
  }

  note(message: string): void {
    if (this.started) this.bar.stop();
    this.started = false;
    process.stderr.write(message + '\n');
  }

  stop(): void {
    if (this.started) this.bar.stop();
    this.started = false;
  }
}

class LineView implements ProgressView {
  private last = 0;

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream,
  ) {}

  update(p: JobProgress): void {
    const now = Date.now();
    if (now - this.last < 2000) return;
    this.last = now;
    const d = describe(p);
    const pct = progressPercent(p);
    this.stream.write(
      `${this.label}: ${pct === null ? '' : `${pct}% `}${d.sizeDone}/${d.sizeTotal}, ${d.files} files, new ${d.added}, ETA ${d.timeLeft}\n`,
    );
  }

  note(message: string): void {
    this.stream.write(message + '\n');
  }

  stop(): void {}
}
