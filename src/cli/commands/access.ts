/** API tokens for `coffer serve`, and the audit log of changes. */
import type { Command } from 'commander';
import { isRole, ROLES } from '../../access/roles.js';
import { generateToken, hashToken } from '../../access/tokens.js';
import { validateName } from '../../app/vaults.js';
import { CofferError } from '../../errors/coffer-error.js';
import { formatTime, parsePositiveInt, printJson, table } from '../format.js';
import { withApp } from '../session.js';
import { requester } from './operations.js';

export function registerAccessCommands(program: Command): void {
  const token = program
    .command('token')
    .description('API tokens for the HTTP API (roles: reader, operator, admin)');

  token
    .command('create')
    .description('create an API token; it is printed once and stored only as a hash')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--name <name>', 'a name for the token (shown as requestedBy on what it does)')
    .option('--json', 'print JSON')
    .action(async (opts: { role: string; name?: string; json?: boolean }) => {
      if (!isRole(opts.role)) {
        throw new CofferError(
          'InvalidRequest',
          `--role must be one of ${ROLES.join(', ')} (got '${opts.role}')`,
          { field: 'role' },
        );
      }
      const role = opts.role;
      const name = opts.name ?? `${role}-${Date.now().toString(36)}`;
      validateName('item', name);
      await withApp(opts.json, async (app) => {
        const secret = generateToken();
        const t = await app.store.createToken({
          name,
          role,
          tokenHash: hashToken(secret),
          createdBy: requester(),
        });
        await app.store.audit(requester(), 'token.create', t.id, { name, role });
        if (opts.json) return printJson({ ...t, token: secret });
        process.stdout.write(`${secret}\n`);
        process.stderr.write(
          `created ${role} token '${name}' (${t.id}); it is shown only now: store it safely\n`,
        );
      });
    });

  token
    .command('list')
    .description('list API tokens (never the tokens themselves)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const tokens = await app.store.listTokens();
        if (opts.json) return printJson(tokens);
        if (!tokens.length)
          return void process.stdout.write('no API tokens: `coffer serve` listens on loopback only\n');
        process.stdout.write(
          table(
            ['NAME', 'ID', 'ROLE', 'CREATED', 'LAST USED', 'REVOKED'],
            tokens.map((t) => [
              t.name,
              t.id,
              t.role,
              formatTime(t.createdAt),
              formatTime(t.lastUsedAt),
              formatTime(t.revokedAt),
            ]),
          ) + '\n',
        );
      });
    });

  token
    .command('revoke')
    .description('revoke an API token by name or id; requests with it are refused from now on')
    .argument('<token>', 'token name or id')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const t = await app.store.revokeToken(ref);
        await app.store.audit(requester(), 'token.revoke', t.id, { name: t.name });
        if (opts.json) return printJson(t);
        process.stdout.write(`revoked token '${t.name}' (${t.id})\n`);
      });
    });

  program
    .command('audit')
    .description('who changed what: vaults, items, tokens (newest first)')
    .option('--limit <n>', 'at most this many entries', '50')
    .option('--json', 'print JSON')
    .action(async (opts: { limit: string; json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const entries = await app.store.listAudit(parsePositiveInt(opts.limit, '--limit', 10_000));
        if (opts.json) return printJson(entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })));
        process.stdout.write(
          table(
            ['TIME', 'ACTOR', 'ACTION', 'TARGET', 'DETAIL'],
            entries.map((e) => [formatTime(e.at), e.actor, e.action, e.target, JSON.stringify(e.detail)]),
          ) + '\n',
        );
      });
    });
}
