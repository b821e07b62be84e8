/**
 * Real-browser test support: a real `coffer serve` on a real catalog and vault, and Debian's
 * Chromium driven by playwright-core with a fresh profile. Nothing is stubbed: the dashboard
 * talks to the server over HTTP exactly as an operator's browser does.
 */
import { type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { collect, startCoffer, waitFor } from '../support/cli.js';
import type { World } from '../support/world.js';

/** Debian's package; `.ci/run` installs it when missing. COFFER_CHROMIUM points elsewhere. */
export const CHROMIUM = process.env.COFFER_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export interface Server {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `coffer serve` on a free port, once it listens. */
export async function serve(w: World, args: string[] = []): Promise<Server> {
  const child = startCoffer(['serve', '--port', '0', '--no-scheduler', ...args], w.env);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = collect(child, 10 * 60_000);
  const url = await waitFor(
    'coffer serve to listen',
    async () => /listening on (http:\/\/\S+)/.exec(out)?.[1],
    20_000,
    50,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${err}`);
  });
  return {
    url,
    child,
    async stop() {
      child.kill('SIGTERM');
      await exited.catch(() => undefined);
    },
  };
}

export interface Browser {
  context: BrowserContext;
  /** A new tab that records console errors and uncaught exceptions (CSP violations included). */
  page(): Promise<Page>;
  /** Every console error and page error seen so far, across tabs. */
  errors: string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'coffer-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(20_000);
  const errors: string[] = [];
  return {
    context,
    errors,
    async page() {
      const page = await context.newPage();
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
      return page;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Where screenshots go when COFFER_SCREENSHOTS names a directory (`npm run screenshots`). */
export const SCREENSHOTS = process.env.COFFER_SCREENSHOTS ?? null;

export async function screenshot(page: Page, name: string, opts: { fullPage?: boolean } = {}): Promise<void> {
  if (!SCREENSHOTS) return;
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: opts.fullPage ?? true });
}

/** Reads a number from the page until `accept` likes it (the page updates live; no fixed sleeps). */
export async function until<T>(
  what: string,
  read: () => Promise<T>,
  accept: (v: T) => boolean,
  ms = 20_000,
): Promise<T> {
  let last: T | undefined;
  return waitFor(
    what,
    async () => {
      last = await read();
      return accept(last) ? { v: last } : null;
    },
    ms,
    50,
  )
    .then((r) => r.v)
    .catch((e: Error) => {
      throw new Error(`${e.message} (last seen: ${JSON.stringify(last)})`);
    });
}
