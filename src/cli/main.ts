/**
 * The `coffer` executable. The memory settings come first and the rest of the CLI is imported
 * only after them: loading the CLI's code is the first burst of allocation, and V8's young
 * generation, once grown, never shrinks (app/process-tuning.ts).
 */
import { startKeyPrefetch } from '../app/key-prefetch.js';
import { tuneProcessMemory } from '../app/process-tuning.js';

tuneProcessMemory();
// A backup's vault key is derived on another core while the CLI loads (app/key-prefetch.ts).
startKeyPrefetch(process.argv);
const { runCli } = await import('./run.js');
const code = await runCli(process.argv);
// Let stdout drain before leaving, so piped JSON is never cut short.
process.exitCode = code;
