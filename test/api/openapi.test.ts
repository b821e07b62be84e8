/** The OpenAPI document generated from the route schemas is valid and covers the API. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { createApiWorld, type ApiWorld } from '../support/api.js';

let w: ApiWorld;
before(async () => {
  w = await createApiWorld('sqlite');
});
after(() => w.close());

test('GET /openapi.json is a valid OpenAPI 3 document listing every route; /docs renders it', async () => {
  const res = await w.http.api.inject({ method: 'GET', url: '/openapi.json' });
  assert.equal(res.statusCode, 200);
  const doc = JSON.parse(res.body) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.match(doc.openapi, /^3\./);
  await SwaggerParser.validate(structuredClone(doc) as never);
  const expected: [string, string][] = [
    ['/api/v1/items/{item}/backups', 'post'],
    ['/api/v1/jobs', 'get'],
    ['/api/v1/jobs/{id}', 'get'],
    ['/api/v1/jobs/{id}/events', 'get'],
    ['/api/v1/jobs/{id}/cancel', 'post'],
    ['/api/v1/jobs/{id}/retry', 'post'],
    ['/api/v1/errors/{code}', 'get'],
    ['/api/v1/insights', 'get'],
    ['/api/v1/vaults', 'post'],
    ['/api/v1/items', 'post'],
    ['/api/v1/policies', 'post'],
    ['/api/v1/items/{item}/points', 'get'],
    ['/metrics', 'get'],
    ['/healthz', 'get'],
  ];
  for (const [path, method] of expected)
    assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`);
  const backups = doc.paths['/api/v1/items/{item}/backups']!.post as { responses: Record<string, unknown> };
  assert.ok(backups.responses['202'] && backups.responses['409'], 'the trigger documents 202 and 409');
  const ui = await w.http.api.inject({ method: 'GET', url: '/docs/' });
  assert.equal(ui.statusCode, 200);
  assert.match(ui.body, /<html/i);
});
