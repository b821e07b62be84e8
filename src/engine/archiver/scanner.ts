import type { TreeCount } from '../parallel/file-work.js';

/**
 * Stat-only walk of the source that runs alongside a first backup so progress can show a
 * percentage and an ETA. Each pool request counts part of the tree on a thread
 * (file-work.ts countTree) and hands back only totals and the directories still to count, one
 * request at a time. Errors are ignored here: the archiver reports them when it reaches the
 * entry.
 */
export class Scanner {
  filesTotal = 0;
  bytesTotal = 0;
  done = false;
  private stopped = false;

  constructor(
    private readonly root: string,
    private readonly countTree: (path: string) => Promise<TreeCount>,
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
      const pending = [this.root];
      while (pending.length > 0 && !this.stopped) {
        const counted = await this.countTree(pending.pop()!);
        this.filesTotal += counted.files;
        this.bytesTotal += counted.bytes;
        pending.push(...counted.pending);
      }
    } finally {
      this.done = true;
    }
  }
}
