/**
 * How a command gets its AppContext and reports its result: one place that maps failures to
 * the catalog's text and exit codes (SPEC §4: 0 ok, 1 failure, 2 usage, 75 in progress).
 */
import { loadConfig } from '../app/config.js';
import { openApp, type AppContext } from '../app/context.js';
import { articleFor, formatErrorText, isErrorCode, problemDetails } from '../errors/index.js';
import { CofferError } from '../errors/coffer-error.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface GlobalOptions {
  passwordFile?: string;
}

let globals: GlobalOptions = {};
let jsonMode = false;

export function setGlobalOptions(g: GlobalOptions): void {
  globals = g;
}

/** Runs a command body with an open app; always closes the catalog. */
export async function withApp<T>(
  json: boolean | undefined,
  fn: (app: AppContext) => Promise<T>,
  overrides: { dbPoolSize?: number | undefined } = {},
): Promise<T> {
  jsonMode = json === true;
  const app = await openApp(
    loadConfig(process.env, { passwordFile: globals.passwordFile, dbPoolSize: overrides.dbPoolSize }),
  );
  try {
    await app.store.reapIfExpired();
    return await fn(app);
  } finally {
    await app.close();
  }
}

export function toCofferError(err: unknown): CofferError {
  if (err instanceof CofferError) return err;
  const e = err as { code?: unknown; message?: unknown };
  if (e && (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === '57P01')) {
    return new CofferError('CatalogUnavailable', String(e.message ?? err));
  }
  return new CofferError('InternalError', err instanceof Error ? err.message : String(err));
}

/** Prints a failure the way the catalog says it, and returns the exit code for it. */
export function reportFailure(err: unknown): number {
  const ce = toCofferError(err);
  if (jsonMode) {
    process.stdout.write(JSON.stringify(problemDetails(ce), null, 2) + '\n');
  } else {
    process.stderr.write(formatErrorText(ce, { color: process.stderr.isTTY === true }) + '\n');
  }
  return isErrorCode(ce.code) ? articleFor(ce.code).exitCode : EXIT_FAILURE;
}

export function isJsonMode(): boolean {
  return jsonMode;
}
