import type { Command } from 'commander';
import { createVault } from '../../app/vaults.js';
import { formatTime, printJson, table } from '../format.js';
import { withApp } from '../session.js';

export function registerVaultCommands(program: Command): void {
  const vault = program.command('vault').description('create and list vaults (encrypted backup stores)');

  vault
    .command('create')
    .description(
      'create a vault: an encrypted repository at DIR (password from COFFER_PASSWORD or --password-file)',
    )
    .argument('<name>', 'vault name')
    .requiredOption('--path <dir>', 'directory that will hold the vault repository')
    .option('--json', 'print the vault as JSON')
    .action(async (name: string, opts: { path: string; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const v = await createVault(app, name, opts.path);
        if (opts.json) printJson(v);
        else process.stdout.write(`created vault '${v.name}' (${v.id}) at ${v.location}\n`);
      });
    });

  vault
    .command('list')
    .description('list vaults with their item and active job counts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const vaults = await app.store.listVaults();
        if (opts.json)
          return printJson(vaults.map((v) => ({ ...v, createdAt: new Date(v.createdAt).toISOString() })));
        if (!vaults.length)
          return void process.stdout.write('no vaults yet: coffer vault create NAME --path DIR\n');
        process.stdout.write(
          table(
            ['NAME', 'ID', 'ITEMS', 'ACTIVE JOBS', 'CREATED', 'LOCATION'],
            vaults.map((v) => [
              v.name,
              v.id,
              String(v.items),
              String(v.activeJobs),
              formatTime(v.createdAt),
              v.location,
            ]),
          ) + '\n',
        );
      });
    });
}
