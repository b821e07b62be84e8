/** The `coffer` executable: parse, run, and turn the outcome into an exit code. */
import { CommanderError } from 'commander';
import { tuneProcessMemory } from '../app/process-tuning.js';
import { buildProgram } from './program.js';
import { EXIT_USAGE, reportFailure } from './session.js';

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => (exitCode = code));
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    return reportFailure(err);
  }
}

// Before any command allocates: the allocator's thresholds apply to what is allocated after.
tuneProcessMemory();
const code = await main(process.argv);
// Let stdout drain before leaving, so piped JSON is never cut short.
process.exitCode = code;
