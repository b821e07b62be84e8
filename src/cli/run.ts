/** Parses the command line, runs the command, and turns the outcome into an exit code. */
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';
import { EXIT_USAGE, reportFailure } from './session.js';

export async function runCli(argv: string[]): Promise<number> {
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
