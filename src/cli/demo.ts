/**
 * `coffer demo` (what `npm start` runs until the server exists): a guided tour on a temporary
 * catalog and vault. Everything in it is real: a real backup into an encrypted vault, a real
 * refusal by the exclusivity rule, a real restore compared byte for byte.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../app/config.js';
import { openApp } from '../app/context.js';
import { addItem, createVault } from '../app/vaults.js';
import { executorFor } from '../app/executors.js';
import { formatErrorText } from '../errors/index.js';
import { isCofferError } from '../errors/coffer-error.js';
import { runJob } from '../jobs/runner.js';
import { formatBytes } from './format.js';

export function registerDemoCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description(
      'a guided tour on a temporary vault: protect, back up, see a second trigger refused, restore',
    )
    .option('--keep', 'keep the temporary directory afterwards')
    .action(async (opts: { keep?: boolean }) => setExit(await demo(opts.keep === true)));
}

const say = (text: string) => process.stdout.write(text + '\n');
const step = (n: number, text: string) => say(`\n== ${n}. ${text}`);

async function demo(keep: boolean): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'coffer-demo-'));
  const source = join(root, 'projects');
  const env = {
    ...process.env,
    COFFER_HOME: join(root, 'home'),
    COFFER_PASSWORD: 'demo-password',
    COFFER_DATABASE_URL: '',
  };
  const app = await openApp(loadConfig(env));
  app.password = () => 'demo-password';
  try {
    step(1, `A directory to protect: ${source}`);
    const bytes = await makeSampleTree(source);
    say(
      `   ${formatBytes(bytes)} in sample files (text that compresses, random data that does not, a symlink, an empty dir)`,
    );

    step(2, 'Create an encrypted vault and protect the directory');
    say('   $ coffer vault create demo --path <vault dir>');
    const vault = await createVault(app, 'demo', join(root, 'vault'), 'demo');
    say(`   vault '${vault.name}' at ${vault.location}`);
    say('   $ coffer item add projects --vault demo --path <dir>');
    const item = await addItem(app, { name: 'projects', vaultRef: 'demo', path: source }, 'demo');

    step(3, 'Back it up (slowed to 4 MiB/s so the next step can catch it running)');
    say('   $ coffer backup projects --limit-read 4M');
    const first = await app.store.admit({
      operation: 'backup',
      itemId: item.id,
      vaultId: vault.id,
      trigger: 'on-demand',
      requestedBy: 'demo',
      params: { limitReadBytesPerSec: 4 * 1024 * 1024 },
      claimBy: { owner: app.workerId, leaseMs: app.config.leaseMs },
    });
    const running = runJob(first.job, first.lease!, executorFor(app), {
      store: app.store,
      clock: app.clock,
      leaseMs: app.config.leaseMs,
    });
    await new Promise((r) => setTimeout(r, 800));

    step(4, 'Trigger a second backup of the same item while the first runs');
    say('   $ coffer backup projects');
    try {
      await app.store.admit({
        operation: 'backup',
        itemId: item.id,
        vaultId: vault.id,
        trigger: 'on-demand',
        requestedBy: 'demo',
      });
      say('   unexpected: the second trigger was admitted');
      return 1;
    } catch (err) {
      if (!isCofferError(err, 'UserErrorBackupOperationInProgress')) throw err;
      say(indent(formatErrorText(err)));
      say('   (the CLI exits with code 75 here, so scripts know to retry later)');
    }

    const outcome = await running;
    const done = await app.store.getJob(first.job.id);
    say(
      `\n   the first backup ended ${outcome.state}: ${done.filesDone} files, ${formatBytes(done.bytesScanned)} scanned, ${formatBytes(done.bytesStored)} stored`,
    );
    if (outcome.state !== 'completed') return 1;

    step(5, 'Restore the recovery point and compare it with the source');
    say('   $ coffer restore projects --target <dir>');
    const target = join(root, 'restored');
    const restore = await app.store.admit({
      operation: 'restore',
      itemId: item.id,
      vaultId: vault.id,
      trigger: 'on-demand',
      requestedBy: 'demo',
      params: { pointId: outcome.recoveryPointId, target },
      claimBy: { owner: app.workerId, leaseMs: app.config.leaseMs },
    });
    const restored = await runJob(restore.job, restore.lease!, executorFor(app), {
      store: app.store,
      clock: app.clock,
      leaseMs: app.config.leaseMs,
    });
    if (restored.state !== 'completed') {
      say(`   restore ended ${restored.state}: ${restored.errorMessage}`);
      return 1;
    }
    const [a, b] = [await treeDigest(source), await treeDigest(target)];
    say(
      a === b
        ? `   identical: every file matches (tree digest ${a.slice(0, 16)})`
        : '   MISMATCH between source and restore',
    );

    step(6, 'Next steps');
    say("   coffer job list            the jobs view, with the refused trigger's blocker");
    say('   coffer explain UserErrorBackupOperationInProgress');
    say(`   (this demo used a temporary catalog in ${root}${keep ? ', kept' : ', now removed'})`);
    return a === b ? 0 : 1;
  } finally {
    await app.close();
    if (!keep) await rm(root, { recursive: true, force: true });
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `   | ${l}`)
    .join('\n');
}

async function makeSampleTree(dir: string): Promise<number> {
  let total = 0;
  for (let d = 0; d < 4; d++) {
    const sub = join(dir, `module-${d}`);
    await mkdir(sub, { recursive: true });
    for (let f = 0; f < 12; f++) {
      const text = `// module ${d} file ${f}\n`.repeat(2000 + f * 400);
      await writeFile(join(sub, `source-${f}.txt`), text);
      total += text.length;
    }
    const blob = randomBytes(2 * 1024 * 1024);
    await writeFile(join(sub, 'assets.bin'), blob);
    total += blob.length;
  }
  await mkdir(join(dir, 'empty-dir'));
  const { symlink } = await import('node:fs/promises');
  await symlink('module-0/source-0.txt', join(dir, 'latest.txt'));
  return total;
}

async function treeDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (d: string): Promise<void> => {
    const entries = (await readdir(d, { withFileTypes: true })).sort((x, y) => (x.name < y.name ? -1 : 1));
    for (const e of entries) {
      const p = join(d, e.name);
      hash.update(`${relative(dir, p)}\0${e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : 'f'}\0`);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) hash.update(await readFile(p));
    }
  };
  await walk(dir);
  return hash.digest('hex');
}
