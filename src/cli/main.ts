/**
 * The `coffer` executable. The memory settings come first and the rest of the CLI is imported
 * only after them: loading the CLI's code is the first burst of allocation, and V8's young
 * generation, once grown, never shrinks (app/process-tuning.ts).
 */
import { tuneProcessMemory } from '../app/process-tuning.js';
import { startAhead } from './start-ahead.js';

tuneProcessMemory();
// A backup's or restore's vault key and engine threads start on another core while the CLI
// loads (start-ahead.ts).
startAhead(process.argv);
const { runCli } = await import('./run.js');
const code = await runCli(process.argv);
// Let stdout drain before leaving, so piped JSON is never cut short.
process.exitCode = code;
