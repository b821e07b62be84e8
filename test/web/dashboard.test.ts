/**
 * The dashboard in a real Chromium against a real `coffer serve`, real vaults and rate-limited
 * real backups: the seed's recommended procedure done in the browser — trigger a backup and
 * watch it move, be refused with a link to the blocking job, cancel it, retry it, restore a
 * point; after a move to another vault, find the old vault's job and cancel it; policies;
 * sign-in with tokens and buttons hidden by role. With COFFER_SCREENSHOTS=dir it also saves
 * screenshots of the main pages (`npm run screenshots`).
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { waitFor } from '../support/cli.js';
import { createWorld, makeRandomTree, type World } from '../support/world.js';
import {
  launchBrowser,
  screenshot,
  serve,
  SCREENSHOTS,
  until,
  type Browser,
  type Server,
} from './support.js';

const KiB = 1024;

/** The job id a "job j_…" link points at. */
async function jobIdOf(page: Page, selector: string): Promise<string> {
  const hrefValue = await page.locator(selector).first().getAttribute('href');
  const id = /\/jobs\/(j_[0-9a-z]{16})$/.exec(hrefValue ?? '')?.[1];
  assert.ok(id, `a job link, got ${hrefValue}`);
  return id;
}

/** The value of a job's progress bar (0-100), or -1 while it has none. */
async function progressOf(page: Page, jobId: string): Promise<number> {
  const bar = page.locator(`progress[data-job="${jobId}"]`).first();
  if ((await bar.count()) === 0) return -1;
  const v = await bar.getAttribute('value');
  return v === null ? -1 : Number(v);
}

async function stateOn(page: Page, scope: string): Promise<string> {
  return (await page.locator(`${scope} .badge`).first().textContent())?.trim() ?? '';
}

describe('web dashboard in Chromium', () => {
  let w: World;
  let server: Server;
  let browser: Browser;
  let page: Page;

  before(async () => {
    w = await createWorld('sqlite', { COFFER_LOG_LEVEL: 'warn' });
    await w.ok(['vault', 'create', 'main', '--path', join(w.root, 'vault-main')]);
    await w.ok(['vault', 'create', 'offsite', '--path', join(w.root, 'vault-offsite')]);
    // Incompressible data read at 0.25 MiB/s: slow enough to watch, cancel and be refused on a
    // busy two-core machine (8 MiB: the retry of photos finishes in about half a minute; db's
    // slow run is always cancelled, and its last backup runs unlimited).
    // Many small files, because progress advances as files complete.
    await makeRandomTree(join(w.root, 'photos'), 128, 64 * KiB);
    await makeRandomTree(join(w.root, 'db'), 256, 64 * KiB);
    await w.ok(['item', 'add', 'photos', '--vault', 'main', '--path', join(w.root, 'photos')]);
    await w.ok(['item', 'add', 'db', '--vault', 'main', '--path', join(w.root, 'db')]);
    server = await serve(w, ['--workers', '3']);
    browser = await launchBrowser();
    page = await browser.page();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await w?.close();
  });

  test('backup with live progress, refusal with the blocking job, cancel, retry, restore', async () => {
    await page.goto(`${server.url}/`);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.locator('.cards .card').first().waitFor();
    assert.equal(await page.locator('.cards .card').count(), 2, 'both vaults on the overview');

    // Backup now on the item page, with a read limit so the backup takes seconds.
    await page.getByRole('link', { name: 'Items', exact: true }).click();
    await page.getByRole('link', { name: 'photos', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Item photos' }).waitFor();
    await page.getByLabel('Read limit (MiB/s, optional)').fill('0.25');
    await page.getByRole('button', { name: 'Backup now: photos' }).click();
    await page.locator('.backup-now .notice a').waitFor();
    const first = await jobIdOf(page, '.backup-now .notice a');

    // The progress bar moves over the event stream, without a reload.
    const p1 = await until(
      'progress to start',
      () => progressOf(page, first),
      (v) => v > 0,
    );
    await until(
      'progress to move',
      () => progressOf(page, first),
      (v) => v > p1,
    );

    // The jobs view shows the same job, running.
    await page.getByRole('link', { name: 'Backup jobs' }).click();
    await page.locator(`tr[data-job="${first}"][data-state="in_progress"]`).waitFor();
    const r1 = await progressOf(page, first);
    await until(
      'the row to move',
      () => progressOf(page, first),
      (v) => v > r1,
    );
    await screenshot(page, 'jobs');

    // Backup now again, from the items page: refused, with the article and the blocking job.
    await page.getByRole('link', { name: 'Items', exact: true }).click();
    const card = page.locator('li[data-item="photos"]');
    await card.getByRole('button', { name: 'Backup now: photos' }).click();
    const refusal = card.locator('.refusal');
    await refusal.waitFor();
    assert.equal(await refusal.getAttribute('data-code'), 'UserErrorBackupOperationInProgress');
    assert.equal(await jobIdOf(page, 'li[data-item="photos"] .refusal .blocking-link'), first);
    assert.ok((await refusal.locator('ol li').count()) >= 2, 'numbered recommended steps');
    await refusal.locator(`progress[data-job="${first}"]`).waitFor();
    await screenshot(page, 'items-refusal');

    // One-click cancel from the refusal; the job ends cancelled and the item is free.
    await refusal.getByRole('button', { name: 'Cancel blocking job' }).click();
    await refusal.getByText('The item is free again').waitFor();
    assert.equal(await stateOn(page, 'li[data-item="photos"] .blocking-job'), 'cancelled');

    // The blocking job's page: timeline and the full self-help article of its end.
    await refusal.locator('.blocking-link').click();
    await page.getByRole('heading', { level: 1, name: `Job ${first}` }).waitFor();
    await page.locator('.timeline li[data-state="cancelled"]').waitFor();
    assert.ok(await page.locator('.timeline li[data-state="in_progress"]').count());
    const article = page.locator('.article');
    await article.locator('ol li').first().waitFor();
    assert.match((await article.locator('h3').textContent()) ?? '', /JobCancelled/);
    await screenshot(page, 'job-detail');

    // Retry: a new job linked to the cancelled one, followed live to completion.
    await page.getByRole('button', { name: 'Retry backup of photos' }).click();
    await page.waitForURL((u) => /\/jobs\/j_/.test(u.pathname) && !u.pathname.endsWith(first));
    const retry = /\/jobs\/(j_[0-9a-z]{16})$/.exec(new URL(page.url()).pathname)![1]!;
    await page.locator('.facts').getByRole('link', { name: first }).waitFor();
    await until(
      'the retry to complete',
      () => stateOn(page, '.job-head'),
      (s) => s === 'completed',
      45_000,
    );
    assert.equal(await progressOf(page, retry), 100);

    // Restore the recovery point into a target directory on the worker's host.
    await page.locator('.facts a[href^="/items/"]').first().click();
    await page.getByRole('heading', { level: 1, name: 'Item photos' }).waitFor();
    const points = page.locator('table.points tbody tr[data-point]');
    await points.first().waitFor();
    assert.equal(await points.count(), 1);
    assert.match((await points.first().locator('td').nth(5).textContent()) ?? '', /no policy: kept/);
    await points
      .first()
      .getByRole('button', { name: /^Restore point / })
      .click();
    const target = join(w.root, 'restored');
    await page.getByLabel('Target directory (absolute path on the worker host)').fill(target);
    await page.getByRole('button', { name: 'Start restore' }).click();
    await until(
      'the restore to complete',
      () => stateOn(page, 'form.panel .notice'),
      (s) => s === 'completed',
    );
    await screenshot(page, 'item-detail');
    const restored = await readdir(join(target), { recursive: true });
    const file = restored.find((f) => f.endsWith('file-0042.bin'));
    assert.ok(file, `restored files: ${restored.join(', ')}`);
    assert.deepEqual(
      await readFile(join(target, file)),
      await readFile(join(w.root, 'photos', 'file-0042.bin')),
    );
  });

  test('after a move, the old vault’s job blocks; find it from the refusal and cancel it with confirmation', async () => {
    await page.goto(`${server.url}/items/db`);
    await page.getByRole('heading', { level: 1, name: 'Item db' }).waitFor();
    await page.getByLabel('Read limit (MiB/s, optional)').fill('0.25');
    await page.getByRole('button', { name: 'Backup now: db' }).click();
    await page.locator('.backup-now .notice a').waitFor();
    const old = await jobIdOf(page, '.backup-now .notice a');
    await until(
      'the backup to run',
      () => progressOf(page, old),
      (v) => v > 0,
    );

    if (SCREENSHOTS) {
      await page.getByRole('link', { name: 'Overview', exact: true }).click();
      await page.locator(`tr[data-job="${old}"]`).waitFor();
      await screenshot(page, 'overview');
      await page.emulateMedia({ colorScheme: 'dark' });
      await screenshot(page, 'overview-dark');
      await page.emulateMedia({ colorScheme: 'light' });
      await page.setViewportSize({ width: 390, height: 844 });
      await screenshot(page, 'overview-phone', { fullPage: false });
      await page.setViewportSize({ width: 1280, height: 860 });
      await page.goBack();
    }

    // Move the item to the other vault while its backup still runs in the first one.
    await page.getByLabel('Move to vault').selectOption('offsite');
    await page.getByRole('button', { name: 'Move', exact: true }).click();
    await page.getByText('From now on db is backed up into offsite').waitFor();
    await page.locator('.facts dt', { hasText: 'Moved from' }).waitFor();

    // Backup now is refused: the blocking job is in the previous vault, and the link says so.
    await page.getByRole('button', { name: 'Backup now: db' }).click();
    const refusal = page.locator('.backup-now .refusal');
    await refusal.waitFor();
    assert.match((await refusal.textContent()) ?? '', /previous vault/);
    assert.equal(await jobIdOf(page, '.backup-now .refusal .blocking-link'), old);
    assert.match((await refusal.locator('.blocking').textContent()) ?? '', /in vault main/);

    // The article's documents open in the dashboard, at their section.
    const [help] = await Promise.all([
      browser.context.waitForEvent('page'),
      refusal.getByRole('link', { name: 'Items moved to another vault' }).click(),
    ]);
    await help.locator('h3#items-moved-to-another-vault').waitFor();
    // The new tab renders the page before and after it has resolved its session (two mounts):
    // wait for the loaded title rather than read whichever render is on screen.
    await help.locator('h1', { hasText: 'Best practices' }).waitFor();
    await help.locator('h3#items-moved-to-another-vault').waitFor();
    await help.close();

    // Insights names the item blocked by its previous vault, with the recommended change.
    await page.getByRole('link', { name: 'Insights' }).click();
    const insight = page.locator('.insight', { hasText: "'db' is blocked by a job in its previous vault" });
    await insight.waitFor();
    await insight.locator('.recommendation').waitFor();
    await screenshot(page, 'insights');

    // The old vault's jobs view lists it; cancel from the row asks first.
    await page.getByRole('link', { name: 'Backup jobs' }).click();
    await page.getByLabel('Vault').selectOption('main');
    await page.waitForURL((u) => u.searchParams.get('vault') === 'main');
    await page.getByLabel('State').selectOption('queued,in_progress,cancelling');
    await page.waitForURL((u) => u.searchParams.get('state') === 'queued,in_progress,cancelling');
    const row = page.locator(`tr[data-job="${old}"]`);
    await row.waitFor();
    // Sortable columns say how they sort, and the order lives in the URL.
    await page.getByRole('button', { name: 'Started' }).click();
    await page.waitForURL((u) => u.searchParams.get('sort') === 'start');
    assert.equal(
      await page
        .locator('th', { has: page.getByRole('button', { name: 'Started' }) })
        .getAttribute('aria-sort'),
      'descending',
    );
    assert.equal(
      await page.locator('table.jobs tbody tr[data-job]').count(),
      1,
      'only the active job in main',
    );
    // Back to every state, so the row stays listed while it turns cancelling, then cancelled.
    await page.getByLabel('State').selectOption('');
    await page.waitForURL((u) => !u.searchParams.has('state'));
    // By keyboard: Enter opens the confirmation, focus starts on the harmless choice, Escape closes it.
    await row.getByRole('button', { name: 'Cancel backup of db' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Keep running' }).and(page.locator(':focus')).waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await row.getAttribute('data-state'), 'in_progress', 'keeping it running changed nothing');
    await row.getByRole('button', { name: 'Cancel backup of db' }).click();
    await dialog.getByRole('button', { name: 'Cancel job' }).click();
    await page.locator(`tr[data-job="${old}"][data-state="cancelled"]`).waitFor();

    // Now the item backs up into its new vault.
    await page.goto(`${server.url}/items/db`);
    await page.getByRole('heading', { level: 1, name: 'Item db' }).waitFor();
    await page.getByRole('button', { name: 'Backup now: db' }).click();
    await page.locator('.backup-now .notice a').waitFor();
    const fresh = await jobIdOf(page, '.backup-now .notice a');
    const job = await waitFor(
      'the new backup to complete',
      async () => {
        const j = await w.store.getJob(fresh);
        return j.state === 'completed' ? j : null;
      },
      30_000,
    );
    assert.equal((await w.store.getVault('offsite')).id, job.vaultId);
  });

  test('policies: create, edit and pause; insights', async () => {
    await page.goto(`${server.url}/policies`);
    await page.getByRole('heading', { level: 2, name: 'New policy' }).waitFor();
    await page.getByLabel('Name').fill('nightly');
    await page.getByLabel('Schedule (cron)').fill('0 2 * * *');
    await page.getByLabel('Time zone').fill('Europe/Berlin');
    await page.getByLabel('daily').fill('7');
    await page.getByLabel('weekly').fill('4');
    await page.getByRole('button', { name: 'Create policy' }).click();
    const row = page.locator('tr[data-policy="nightly"]');
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /daily 7, weekly 4/);

    await row.getByRole('button', { name: 'Edit policy nightly' }).click();
    const form = page.locator('form.policy-form');
    await form.getByLabel('Schedule (cron)').fill('30 3 * * *');
    await form.getByLabel('On overlap').selectOption('queue-one');
    await form.getByRole('button', { name: 'Save changes' }).click();
    await until(
      'the edit to show',
      async () => (await row.textContent()) ?? '',
      (t) => /30 3 \* \* \*.*queue-one/.test(t),
    );

    await row.getByRole('button', { name: 'Pause policy nightly' }).click();
    await row.getByRole('button', { name: 'Resume policy nightly' }).waitFor();
    assert.match((await row.textContent()) ?? '', /paused/);
    await screenshot(page, 'policies');

    // Assign it to an item: the points now show which rule keeps each.
    await page.goto(`${server.url}/items/photos`);
    await page.getByLabel('Policy').selectOption({ label: 'nightly' });
    await until(
      'the retention column to follow the policy',
      async () => (await page.locator('table.points tbody tr[data-point] td').nth(5).textContent()) ?? '',
      (t) => /daily/.test(t),
    );

    // Pages follow the API's cursor: two jobs a page, older, then back to the newest.
    await page.goto(`${server.url}/jobs?limit=2`);
    const ids = () =>
      page
        .locator('table.jobs tbody tr[data-job]')
        .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')));
    await page.locator('table.jobs tbody tr[data-job]').nth(1).waitFor();
    const newest = await ids();
    assert.equal(newest.length, 2);
    await page.getByRole('link', { name: 'Older →' }).click();
    await page.waitForURL((u) => u.searchParams.has('cursor') && u.searchParams.get('limit') === '2');
    await until('the older page', ids, (v) => v.length === 2 && !v.some((id) => newest.includes(id)));
    await page.getByRole('link', { name: '← Newest' }).click();
    await until('the newest page again', ids, (v) => v.join() === newest.join());

    await page.getByRole('link', { name: 'Insights' }).click();
    await page.getByRole('heading', { level: 1, name: 'Insights' }).waitFor();
    await page.locator('.insights, .notice').first().waitFor();
  });

  test('with tokens: sign in, and each role sees only the buttons it may use', async () => {
    const reader = (await w.ok(['token', 'create', '--role', 'reader', '--name', 'auditor'])).stdout.trim();
    const operator = (
      await w.ok(['token', 'create', '--role', 'operator', '--name', 'oncall'])
    ).stdout.trim();
    // The server caches "are there tokens" for two seconds.
    await waitFor(
      'tokens to be required',
      async () => (await fetch(`${server.url}/api/v1/whoami`)).status === 401,
    );
    const tab = await browser.page();
    await tab.goto(`${server.url}/items`);
    await tab.getByRole('heading', { level: 1, name: 'Sign in to coffer' }).waitFor();
    await screenshot(tab, 'sign-in', { fullPage: false });
    // The docs the articles link to open without a token (they are not part of the API).
    const doc = await browser.page();
    await doc.goto(`${server.url}/help/restore-considerations.md`);
    await doc.getByRole('heading', { level: 1, name: 'Restore considerations' }).waitFor();
    await doc.close();

    await tab.getByLabel('API token').fill('coffer_not-a-real-token');
    await tab.getByRole('button', { name: 'Sign in' }).click();
    await tab.getByRole('alert').waitFor();
    assert.match((await tab.getByRole('alert').textContent()) ?? '', /Unauthenticated/);

    await tab.getByLabel('API token').fill(reader);
    await tab.getByRole('button', { name: 'Sign in' }).click();
    await tab.getByRole('heading', { level: 1, name: 'Protected items' }).waitFor();
    assert.match((await tab.locator('.who').textContent()) ?? '', /auditor\s*reader/);
    assert.equal(
      await tab.getByRole('button', { name: /^Backup now/ }).count(),
      0,
      'a reader cannot back up',
    );
    await tab.getByRole('link', { name: 'Backup jobs' }).click();
    await tab.locator('table.jobs tbody tr[data-job]').first().waitFor();
    assert.equal(
      await tab.getByRole('button', { name: /^(Retry|Cancel) / }).count(),
      0,
      'nor cancel or retry',
    );

    await tab.getByRole('button', { name: 'Sign out' }).click();
    await tab.getByLabel('API token').fill(operator);
    await tab.getByRole('button', { name: 'Sign in' }).click();
    await tab
      .getByRole('button', { name: /^Retry / })
      .first()
      .waitFor();
    await tab.getByRole('link', { name: 'Items', exact: true }).click();
    await tab.getByRole('button', { name: 'Backup now: photos' }).waitFor();
    await tab.getByRole('link', { name: 'Policies' }).click();
    await tab.locator('tr[data-policy="nightly"]').waitFor();
    assert.equal(
      await tab.getByRole('button', { name: /^Edit policy/ }).count(),
      0,
      'policies are for admins',
    );
    assert.equal(await tab.getByRole('heading', { name: 'New policy' }).count(), 0);
    await tab.close();
  });

  test('no console errors, no CSP violations', () => {
    assert.deepEqual(
      browser.errors.filter((e) => !/status of 40[19]/.test(e)),
      [],
    );
  });
});
