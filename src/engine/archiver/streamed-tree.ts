/**
 * The tree of a directory walked without a parent tree, written as its entries finish
 * (TreeWriter), in the entries' order whatever order they finish in. Why: a directory's nodes
 * used to be held until its last entry was done and then encoded at once, so the largest
 * directory of a tree (18,000 files in the small benchmark tree's man1) set the main thread's
 * peak memory: its nodes, then its whole JSON as a string and again as a buffer. Here a node is
 * encoded as soon as every entry before it is, and let go of.
 */
import { TreeWriter, type TreeNode } from '../tree/tree.js';

/** What the walk made of an entry: its node, or a subdirectory's node once its tree is sealed. */
export type EntryResult = TreeNode | { sealing: Promise<TreeNode> };

export class StreamedTree {
  /** Entry i's outcome once it has one (null: left out); undefined until then. Let go of once written. */
  private readonly outcomes: (EntryResult | null | undefined)[];
  private next = 0;
  /** The next entry is a subdirectory whose node is still to come. */
  private waiting = false;
  private readonly writer = new TreeWriter();
  private failure: { err: unknown } | null = null;
  private result: Buffer | null = null;
  private onDone: { resolve: (bytes: Buffer) => void; reject: (err: unknown) => void } | null = null;

  constructor(private readonly count: number) {
    this.outcomes = new Array<EntryResult | null | undefined>(count).fill(undefined);
    this.advance();
  }

  /** Entry `i` is done: its node, a subdirectory's node to come, or null when it is left out. */
  settle(i: number, outcome: EntryResult | null): void {
    if (this.outcomes[i] !== undefined || i < this.next)
      throw new Error(`streamed tree: entry ${i} settled twice`);
    this.outcomes[i] = outcome;
    this.advance();
  }

  /**
   * The tree's bytes, once every entry has settled and every subdirectory's node has come; fails
   * as the first subdirectory whose node failed.
   */
  bytes(): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure.err);
    if (this.result) return Promise.resolve(this.result);
    return new Promise((resolve, reject) => (this.onDone = { resolve, reject }));
  }

  private advance(): void {
    while (!this.waiting && !this.failure && this.next < this.count) {
      const outcome = this.outcomes[this.next];
      if (outcome === undefined) return;
      if (outcome !== null && 'sealing' in outcome) {
        this.waiting = true;
        outcome.sealing.then(
          (node) => {
            this.outcomes[this.next] = node;
            this.waiting = false;
            this.guarded(() => this.advance());
          },
          (err: unknown) => this.fail(err),
        );
        return;
      }
      this.outcomes[this.next] = null;
      if (outcome !== null) this.writer.add(outcome);
      this.next++;
    }
    if (this.next === this.count && !this.result && !this.failure) {
      this.result = this.writer.finish();
      this.onDone?.resolve(this.result);
    }
  }

  /** Runs `step` from a callback, where a throw would go unseen: it fails the tree instead. */
  private guarded(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = { err };
    this.onDone?.reject(err);
  }
}
