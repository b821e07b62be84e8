/**
 * The dashboard's API types cannot drift: src/web/api-types.ts must be exactly what
 * openapi-typescript makes of the OpenAPI document a freshly built `coffer serve` publishes.
 * After changing a route schema, run `npm run gen:api`.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { REPO_ROOT } from '../support/cli.js';

/** src/web/tools/api-types.mjs: the generator `npm run gen:api` runs, shared so both agree. */
interface Generator {
  API_TYPES_FILE: string;
  liveOpenApi(): Promise<unknown>;
  renderApiTypes(doc: unknown): Promise<string>;
}

test('src/web/api-types.ts matches the live OpenAPI document (run `npm run gen:api` if not)', async () => {
  const gen = (await import(
    pathToFileURL(join(REPO_ROOT, 'src', 'web', 'tools', 'api-types.mjs')).href
  )) as Generator;
  const expected = await gen.renderApiTypes(await gen.liveOpenApi());
  const actual = await readFile(gen.API_TYPES_FILE, 'utf8');
  assert.ok(
    actual === expected,
    'src/web/api-types.ts is out of date: run `npm run gen:api` and commit the result',
  );
});
