/**
 * What a backup or restore in the foreground starts before the CLI loads the rest of its code
 * (main.ts): the vault key's derivation (app/key-prefetch.ts) and the engine's threads
 * (engine/parallel/thread-start.ts). Both cost a core for a tenth of a second or less, which the
 * other core spends loading the CLI, admitting the job and reading the vault's index: measured
 * on a backup with no changes, each thread and the derivation waited for one another after the
 * CLI had loaded. Imports nothing heavy, for the same reason. First of all it has V8 wait
 * longer before optimising, as suits a command that lives seconds (app/process-tuning.ts), and
 * for a restore, the main thread takes a share of the engine's work (thread-start.ts).
 */
import { itemCommandOf, startKeyPrefetch } from '../app/key-prefetch.js';
import { tuneCompilerForOneShot } from '../app/process-tuning.js';
import { preferMainThreadLane, startThreadsAhead } from '../engine/parallel/thread-start.js';

export function startAhead(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): void {
  const cmd = itemCommandOf(argv.slice(2));
  if (!cmd) return;
  // Before the CLI's code loads: V8 counts its budget from a function's first run.
  tuneCompilerForOneShot(env);
  startKeyPrefetch(cmd, env);
  // A restore has the main thread take a share of the engine's work (thread-start.ts).
  if (cmd.command === 'restore') preferMainThreadLane();
  startThreadsAhead(env);
}
