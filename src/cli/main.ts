/**
 * The `coffer` command line (SPEC §4). Command names, flags and exit codes are a public
 * contract: add to them, never rename.
 */
import { Command, CommanderError } from 'commander';
import { registerItemCommands } from './commands/item.js';
import { registerJobCommands } from './commands/job.js';
import { registerMiscCommands } from './commands/misc.js';
import { registerOperationCommands } from './commands/operations.js';
import { registerVaultCommands } from './commands/vault.js';
import { registerDemoCommand } from './demo.js';
import { EXIT_USAGE, reportFailure, setGlobalOptions } from './session.js';

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('coffer')
    .description('coffer: backups that never run twice at once, with self-help when they refuse')
    .version('0.1.0')
    .option('--password-file <file>', 'read the vault password from this file instead of COFFER_PASSWORD')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .hook('preAction', (cmd) => setGlobalOptions(cmd.opts<{ passwordFile?: string }>()));
  registerVaultCommands(program);
  registerItemCommands(program);
  registerOperationCommands(program, setExit);
  registerJobCommands(program, setExit);
  registerMiscCommands(program, setExit);
  registerDemoCommand(program, setExit);
  // Every subcommand gets the same usage-error behaviour as the root.
  const inherit = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride().showHelpAfterError('(run with --help for usage)');
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

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

const code = await main(process.argv);
// Let stdout drain before leaving, so piped JSON is never cut short.
process.exitCode = code;
