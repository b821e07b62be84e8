import type { Command } from 'commander';
import { createVault, importVault } from '../../app/vaults.js';
import { formatTime, printJson, table } from '../format.js';
import { withApp } from '../session.js';
import { requester } from './operations.js';

export function registerVaultCommands(program: Command): void {
  const vault = program.command('vault').description('create and list vaults (encrypted backup stores)');

  vault
    .command('create')
    .description(
      'create a vault: an encrypted repository at DIR (password from COFFER_PASSWORD or --password-file)',
    )
    .argument('<name>', 'vault name')
    .requiredOption('--path <dir>', 'directory that will hold the vault repository')
    .option(
      '--compression <level>',
      'zstd compression of new data: off, fast (1), default (3), max (19), or a level from 0 to 19',
    )
    .option('--json', 'print the vault as JSON')
    .action(async (name: string, opts: { path: string; compression?: string; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const v = await createVault(app, name, opts.path, requester(), { compression: opts.compression });
        if (opts.json) printJson(v);
        else process.stdout.write(`created vault '${v.name}' (${v.id}) at ${v.location}\n`);
      });
    });

  vault
    .command('import')
    .description(
      'register an existing vault directory and rebuild its items and recovery points from storage (after losing the catalog)',
    )
    .argument('<name>', 'vault name in this catalog')
    .requiredOption('--path <dir>', 'directory that holds the vault repository')
    .option('--json', 'print what was imported as JSON')
    .action(async (name: string, opts: { path: string; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const r = await importVault(app, name, opts.path, requester());
        if (opts.json) return printJson(r);
        process.stdout.write(`imported vault '${r.vault.name}' (${r.vault.id}) from ${r.vault.location}\n`);
        for (const i of r.items)
          process.stdout.write(
            `  item '${i.name}' (${i.id})${i.created ? ' re-created' : ' already known'}\n`,
          );
        process.stdout.write(`  ${r.pointsAdded} recovery point(s) added, ${r.pointsKnown} already known\n`);
        for (const s of r.skipped) process.stdout.write(`  skipped: ${s}\n`);
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
