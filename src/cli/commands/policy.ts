/** coffer policy …: schedules with time zones, retention rules and overlap policies. */
import { Command, Option } from 'commander';
import {
  createPolicy,
  DEFAULT_CATCH_UP_MS,
  defaultTimeZone,
  deletePolicy,
  RETENTION_RULES,
  setItemPolicy,
  updatePolicy,
} from '../../app/policies.js';
import type { Policy, PolicyInput } from '../../catalog/store.js';
import { CofferError } from '../../errors/coffer-error.js';
import { OVERLAP_POLICIES, nextDue, parseDurationMs, type OverlapPolicy } from '../../scheduler/schedule.js';
import { formatDuration, formatTime, parseRate, printJson, table } from '../format.js';
import { withApp } from '../session.js';
import { requester } from './operations.js';

interface PolicyFlags {
  schedule?: string;
  tz?: string;
  jitter?: string;
  onOverlap?: string;
  catchUp?: string;
  paused?: boolean;
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  limitRead?: string;
  json?: boolean;
}

function count(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 100_000)
    throw new CofferError('InvalidRequest', `${field} must be a whole number from 0 to 100000`, { field });
  return n;
}

function retentionFrom(f: PolicyFlags): Record<string, number> | undefined {
  const r: Record<string, number> = {};
  for (const rule of RETENTION_RULES) {
    const key = `keep${rule[0]!.toUpperCase()}${rule.slice(1)}` as keyof PolicyFlags;
    const n = count(f[key] as string | undefined, `--keep-${rule}`);
    if (n !== undefined) r[rule] = n;
  }
  return Object.keys(r).length ? r : undefined;
}

function withPolicyFlags(cmd: Command, creating: boolean): Command {
  cmd
    .option(
      '--tz <zone>',
      // Not the zone's name: reading it initialises ICU, which every command would pay at start.
      `IANA time zone of the schedule${creating ? " (default: this machine's time zone)" : ''}`,
    )
    .option('--jitter <duration>', 'spread start times randomly (stable per item) up to this, e.g. 5m')
    .addOption(
      new Option(
        '--on-overlap <policy>',
        'when a run comes due while a backup of the item is active',
      ).choices([...OVERLAP_POLICIES]),
    )
    .option(
      '--catch-up <duration>',
      'after downtime, run the latest missed due time if it is at most this old (default 1h)',
    )
    .option('--limit-read <rate>', 'read at most this fast in scheduled runs, e.g. 50M (bytes per second)');
  for (const rule of RETENTION_RULES)
    cmd.option(
      `--keep-${rule} <n>`,
      `retention: keep the newest point of each of the last N ${rule === 'last' ? 'points' : `${rule} periods`}`,
    );
  return cmd.option('--json', 'print JSON');
}

function describePolicy(p: Policy & { items?: number }): string[] {
  const next = p.paused ? null : nextDue(p.schedule, p.timezone, Date.now());
  const keep =
    Object.entries(p.retention)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'keep everything';
  return [
    p.name,
    p.schedule,
    p.timezone,
    p.overlap,
    formatDuration(p.catchUpMs),
    keep,
    p.paused ? 'paused' : formatTime(next),
    String(p.items ?? ''),
  ];
}

export function registerPolicyCommands(program: Command): void {
  const policy = program
    .command('policy')
    .description('schedules, retention and overlap policies for protected items');

  withPolicyFlags(
    policy
      .command('create')
      .description(
        'create a policy; assign it with `coffer item set-policy ITEM POLICY` or `item add --policy`',
      )
      .argument('<name>', 'policy name')
      .requiredOption(
        '--schedule <cron>',
        "cron expression (5 or 6 fields, e.g. '0 2 * * *', or '*/15 * * * *')",
      )
      .option('--paused', 'create it paused'),
    true,
  ).action(async (name: string, f: PolicyFlags) => {
    await withApp(f.json, async (app) => {
      const input: PolicyInput = {
        name,
        schedule: f.schedule!,
        timezone: f.tz ?? defaultTimeZone(),
        jitterSeconds: f.jitter ? Math.round(parseDurationMs(f.jitter, '--jitter') / 1000) : 0,
        retention: retentionFrom(f) ?? {},
        overlap: (f.onOverlap ?? 'skip') as OverlapPolicy,
        catchUpMs: f.catchUp ? parseDurationMs(f.catchUp, '--catch-up') : DEFAULT_CATCH_UP_MS,
        paused: f.paused === true,
        limitReadBytesPerSec: f.limitRead ? parseRate(f.limitRead, '--limit-read') : null,
      };
      const p = await createPolicy(app, input, requester());
      if (f.json) return printJson(p);
      process.stdout.write(
        `created policy '${p.name}' (${p.id}): ${p.schedule} ${p.timezone}, overlap ${p.overlap}; next run ${formatTime(nextDue(p.schedule, p.timezone, Date.now()))}\n`,
      );
    });
  });

  withPolicyFlags(
    policy
      .command('update')
      .description('change a policy; unspecified settings stay')
      .argument('<name>', 'policy name or id')
      .option('--schedule <cron>', 'new cron expression'),
    false,
  ).action(async (ref: string, f: PolicyFlags) => {
    await withApp(f.json, async (app) => {
      const p = await updatePolicy(
        app,
        ref,
        {
          schedule: f.schedule,
          timezone: f.tz,
          jitterSeconds: f.jitter ? Math.round(parseDurationMs(f.jitter, '--jitter') / 1000) : undefined,
          retention: retentionFrom(f),
          overlap: f.onOverlap as OverlapPolicy | undefined,
          catchUpMs: f.catchUp ? parseDurationMs(f.catchUp, '--catch-up') : undefined,
        },
        requester(),
      );
      if (f.json) return printJson(p);
      process.stdout.write(`updated policy '${p.name}'\n`);
    });
  });

  for (const [verb, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    policy
      .command(verb)
      .description(
        paused
          ? 'stop firing scheduled runs of this policy'
          : 'fire scheduled runs again (from the next due time)',
      )
      .argument('<name>', 'policy name or id')
      .option('--json', 'print JSON')
      .action(async (ref: string, f: { json?: boolean }) => {
        await withApp(f.json, async (app) => {
          const p = await updatePolicy(app, ref, { paused }, requester());
          if (f.json) return printJson(p);
          process.stdout.write(`policy '${p.name}' ${paused ? 'paused' : 'resumed'}\n`);
        });
      });
  }

  policy
    .command('list')
    .description('list policies with their next run')
    .option('--json', 'print JSON')
    .action(async (f: { json?: boolean }) => {
      await withApp(f.json, async (app) => {
        const policies = await app.store.listPolicies();
        if (f.json) return printJson(policies);
        if (!policies.length)
          return void process.stdout.write(
            "no policies yet: coffer policy create NAME --schedule '0 2 * * *'\n",
          );
        process.stdout.write(
          table(
            ['NAME', 'SCHEDULE', 'TZ', 'OVERLAP', 'CATCH-UP', 'RETENTION', 'NEXT RUN', 'ITEMS'],
            policies.map(describePolicy),
          ) + '\n',
        );
      });
    });

  policy
    .command('show')
    .description('a policy, its next runs and the items that use it')
    .argument('<name>', 'policy name or id')
    .option('--json', 'print JSON')
    .action(async (ref: string, f: { json?: boolean }) => {
      await withApp(f.json, async (app) => {
        const p = await app.store.getPolicy(ref);
        const items = await app.store.itemsWithPolicy(p.id);
        const next: number[] = [];
        let t = Date.now();
        for (let i = 0; i < 5 && !p.paused; i++) {
          const d = nextDue(p.schedule, p.timezone, t);
          if (d === null) break;
          next.push(d);
          t = d;
        }
        if (f.json)
          return printJson({
            ...p,
            items: items.map((i) => i.name),
            nextRuns: next.map((d) => new Date(d).toISOString()),
          });
        const [name, schedule, tz, overlap, catchUp, keep] = describePolicy(p);
        process.stdout.write(
          `policy     ${name} (${p.id})\nschedule   ${schedule} (${tz})${p.jitterSeconds ? `, jitter up to ${formatDuration(p.jitterSeconds * 1000)}` : ''}\noverlap    ${overlap}\ncatch-up   ${catchUp}\nretention  ${keep}\nstate      ${p.paused ? 'paused' : 'active'}\nnext runs  ${next.map((d) => formatTime(d)).join(', ') || '-'}\nitems      ${items.map((i) => i.name).join(', ') || '-'}\n`,
        );
      });
    });

  policy
    .command('delete')
    .description('delete a policy that no item uses')
    .argument('<name>', 'policy name or id')
    .action(async (ref: string) => {
      await withApp(false, async (app) => {
        await deletePolicy(app, ref, requester());
        process.stdout.write(`deleted policy '${ref}'\n`);
      });
    });
}

export function registerItemPolicyCommand(item: Command): void {
  item
    .command('set-policy')
    .description(
      'assign a policy to an item (its schedule starts at the next due time), or remove it with --none',
    )
    .argument('<item>', 'item name or id')
    .argument('[policy]', 'policy name or id')
    .option('--none', 'remove the item from its policy (no scheduled backups)')
    .option('--json', 'print JSON')
    .action(async (itemRef: string, policyRef: string | undefined, f: { none?: boolean; json?: boolean }) => {
      if (!policyRef && !f.none)
        throw new CofferError(
          'InvalidRequest',
          'name a policy, or pass --none to remove the item from its policy',
          { field: 'policy' },
        );
      await withApp(f.json, async (app) => {
        const it = await setItemPolicy(app, itemRef, f.none ? null : policyRef!, requester());
        if (f.json) return printJson(it);
        process.stdout.write(
          f.none
            ? `item '${it.name}' has no policy now\n`
            : `item '${it.name}' now follows policy '${policyRef}'\n`,
        );
      });
    });
}
