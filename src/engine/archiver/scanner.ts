import { join } from 'node:path';
import type { ScannedDir } from '../parallel/file-work.js';

/**
 * Stat-only walk of the source that runs alongside a first backup so progress can show a
 * percentage and an ETA. It lists directories the way the archiver does (a pool request lists a
 * directory and the subdirectories it reads ahead) and keeps only the running totals. Errors
 * are ignored here: the archiver reports them when it reaches the entry.
 */
export class Scanner {
  filesTotal = 0;
  bytesTotal = 0;
  done = false;
  private stopped = false;

  constructor(
    private readonly root: string,
    private readonly scanDir: (path: string) => Promise<ScannedDir>,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /**
   * Takes the totals from the parent backup instead of walking. An incremental backup of a
   * mostly unchanged tree is little more than one lstat per entry, and the walk doubled that;
   * the parent's counts are as good an estimate for a percentage and an ETA.
   */
  useEstimate(files: number, bytes: number): void {
    this.filesTotal = files;
    this.bytesTotal = bytes;
    this.done = true;
  }

  async run(): Promise<void> {
    try {
      await this.walk(this.root);
    } finally {
      this.done = true;
    }
  }

  private async walk(dir: string, listed?: ScannedDir): Promise<void> {
    if (this.stopped) return;
    const listing = listed ?? (await this.scanDir(dir));
    for (const e of listing.entries) {
      if (e.kind === 'file') {
        this.filesTotal++;
        this.bytesTotal += e.size;
      }
    }
    for (const e of listing.entries) {
      if (e.kind === 'dir') await this.walk(join(dir, e.name), listing.subdirs?.get(e.name));
    }
  }
}
