/**
 * The `coffer` command tree (SPEC §4). Command names, flags and exit codes are a public
 * contract: add to them, never rename. Built in its own module so tests can read the real
 * command tree.
 */
import { Command } from 'commander';
import { registerAccessCommands } from './commands/access.js';
import { registerInsightsCommand } from './commands/insights.js';
import { registerItemCommands } from './commands/item.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerServeCommand } from './commands/serve.js';
import { registerJobCommands } from './commands/job.js';
import { registerMiscCommands } from './commands/misc.js';
import { registerOperationCommands } from './commands/operations.js';
import { registerVaultCommands } from './commands/vault.js';
import { registerDemoCommand } from './demo.js';
import { setGlobalOptions } from './session.js';

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
  registerAccessCommands(program);
  registerPolicyCommands(program);
  registerInsightsCommand(program);
  registerServeCommand(program);
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
