import type { Command } from 'commander';
import { addItem, moveItem } from '../../app/vaults.js';
import { formatTime, printJson, table } from '../format.js';
import { withApp } from '../session.js';
import { requester } from './operations.js';
import { registerItemPolicyCommand } from './policy.js';

export function registerItemCommands(program: Command): void {
  const item = program.command('item').description('protect directories and move them between vaults');

  item
    .command('add')
    .description('protect a directory: back it up into a vault')
    .argument('<name>', 'item name')
    .requiredOption('--vault <vault>', 'vault to back up into')
    .requiredOption('--path <dir>', 'directory to protect')
    .option('--policy <policy>', 'schedule and retention policy to follow')
    .option('--json', 'print the item as JSON')
    .action(async (name: string, opts: { vault: string; path: string; policy?: string; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const policyId = opts.policy ? (await app.store.getPolicy(opts.policy)).id : null;
        const it = await addItem(app, { name, vaultRef: opts.vault, path: opts.path, policyId }, requester());
        if (opts.json) printJson(it);
        else
          process.stdout.write(
            `protecting ${it.sourcePath} as item '${it.name}' (${it.id}) in vault '${opts.vault}'\n`,
          );
      });
    });

  registerItemPolicyCommand(item);

  item
    .command('list')
    .description('list protected items with their vault, last backup and last recovery point')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const items = await app.store.listItems();
        if (opts.json) return printJson(items);
        if (!items.length)
          return void process.stdout.write(
            'no protected items yet: coffer item add NAME --vault VAULT --path DIR\n',
          );
        process.stdout.write(
          table(
            ['NAME', 'ID', 'VAULT', 'LAST BACKUP', 'LAST POINT', 'PATH'],
            items.map((i) => [
              i.name,
              i.id,
              i.vaultName,
              i.lastJob ? `${i.lastJob.state} (${i.lastJob.id})` : '-',
              i.lastPoint ? formatTime(i.lastPoint.snapshotTime) : '-',
              i.sourcePath,
            ]),
          ) + '\n',
        );
      });
    });

  item
    .command('move')
    .description('back the item up into another vault from now on (its identity and history stay)')
    .argument('<name>', 'item name or id')
    .requiredOption('--vault <vault>', 'the new vault')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { vault: string; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const { item: moved, from, to } = await moveItem(app, name, opts.vault, requester());
        const active = await app.store.activeExclusiveJob(moved.id);
        if (opts.json)
          return printJson({ item: moved, from: from.name, to: to.name, activeJob: active?.id ?? null });
        process.stdout.write(
          `item '${moved.name}' now backs up into vault '${to.name}' (was '${from.name}')\n`,
        );
        if (active && active.vaultId !== to.id) {
          process.stdout.write(
            `note: job ${active.id} (${active.operation}, ${active.state}) still runs in vault '${from.name}'; ` +
              `new backups are refused until it ends. Watch it: coffer job show ${active.id}\n`,
          );
        }
      });
    });
}
