import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Stat-only walk of the source that runs alongside the backup so progress can show a percentage
 * and an ETA. Errors are ignored here: the archiver reports them when it reaches the entry.
 */
export class Scanner {
  filesTotal = 0;
  bytesTotal = 0;
  done = false;
  private stopped = false;

  constructor(private readonly root: string) {}

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

  private async walk(dir: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (this.stopped) return;
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        await this.walk(path);
      } else if (e.isFile()) {
        try {
          const st = await lstat(path);
          this.filesTotal++;
          this.bytesTotal += st.size;
        } catch {
          /* vanished or unreadable: the archiver will warn */
        }
      }
    }
  }
}
