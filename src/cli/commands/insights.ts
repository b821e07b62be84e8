import type { Command } from 'commander';
import { currentInsights } from '../../app/insights.js';
import { printJson } from '../format.js';
import { withApp } from '../session.js';

export function registerInsightsCommand(program: Command): void {
  program
    .command('insights')
    .description(
      'warnings from the job history: schedules at risk, blocked items, stalled workers, repeated failures',
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withApp(opts.json, async (app) => {
        const insights = await currentInsights(app);
        if (opts.json) return printJson(insights);
        if (!insights.length) return void process.stdout.write('no insights: nothing needs attention\n');
        for (const i of insights) {
          process.stdout.write(`${i.severity.toUpperCase()} ${i.kind}: ${i.title}\n`);
          process.stdout.write(`  items: ${i.items.map((x) => x.name).join(', ') || '-'}\n`);
          process.stdout.write(`  evidence: ${JSON.stringify(i.evidence)}\n`);
          process.stdout.write(`  recommended: ${i.recommendation}\n`);
          for (const d of i.docs) process.stdout.write(`  learn more: ${d.title}: ${d.href}\n`);
          process.stdout.write('\n');
        }
      });
    });
}
