/**
 * API tokens and roles (reader, operator, admin), the audit trail, and the loopback-only rule
 * for a server without tokens.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateToken, hashToken } from '../../src/access/tokens.js';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { createLogger } from '../../src/observability/logger.js';
import { runServer } from '../../src/server/run-server.js';
import { createApiWorld, type ApiWorld } from '../support/api.js';
import { dialects } from '../support/catalogs.js';

for (const dialect of await dialects()) {
  describe(`API access control (${dialect})`, () => {
    let w: ApiWorld;
    const tokens: Record<string, string> = {};
    const call = async (
      method: 'GET' | 'POST' | 'DELETE',
      url: string,
      token?: string,
      payload?: unknown,
    ) => {
      const res = await w.http.api.inject({
        method,
        url,
        payload: payload as never,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      return { status: res.statusCode, body: JSON.parse(res.body || 'null') as Record<string, unknown> };
    };

    before(async () => {
      w = await createApiWorld(dialect);
      await w.seed('main', ['docs']);
    });
    after(() => w.close());

    test('without tokens the local caller acts as admin', async () => {
      assert.equal((await call('GET', '/api/v1/vaults')).status, 200);
      await assert.rejects(
        runServer(
          w.app,
          { host: '0.0.0.0', port: 0, workers: 0, graceMs: 1000, scheduler: false },
          createLogger('silent'),
        ),
        (err: unknown) =>
          isCofferError(err, 'InvalidRequest') &&
          /refusing to listen on 0\.0\.0\.0 without API tokens/.test(err.message),
      );
    });

    test('with tokens: 401 without one, 403 beyond the role, and requestedBy names the token', async () => {
      for (const role of ['reader', 'operator', 'admin'] as const) {
        tokens[role] = generateToken();
        await w.app.store.createToken({
          name: `${role}-bot`,
          role,
          tokenHash: hashToken(tokens[role]!),
          createdBy: 'test',
        });
      }
      // The server caches "tokens exist" for 2 s.
      await new Promise((r) => setTimeout(r, 2100));
      const anonymous = await call('GET', '/api/v1/jobs');
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.code, 'Unauthenticated');
      assert.equal(
        (await call('GET', '/api/v1/jobs', 'cft_not-a-real-token-but-long-enough-to-look-like-one')).status,
        401,
      );
      assert.equal((await call('GET', '/healthz')).status, 200, 'health stays public');

      assert.equal((await call('GET', '/api/v1/items', tokens.reader)).status, 200);
      const denied = await call('POST', '/api/v1/items/docs/backups', tokens.reader);
      assert.equal(denied.status, 403);
      assert.equal(denied.body.code, 'Forbidden');
      assert.equal(denied.body.requiredRole, 'operator');

      const triggered = await call('POST', '/api/v1/items/docs/backups', tokens.operator);
      assert.equal(triggered.status, 202);
      assert.equal(triggered.body.requestedBy, 'token:operator-bot');
      assert.equal(
        (await call('POST', `/api/v1/jobs/${String(triggered.body.id)}/cancel`, tokens.operator)).status,
        202,
      );
      assert.equal(
        (await call('POST', '/api/v1/vaults', tokens.operator, { name: 'nope', path: '/tmp/nope' })).status,
        403,
      );
      assert.equal((await call('GET', '/api/v1/tokens', tokens.operator)).status, 403);
      const force = await call('POST', `/api/v1/jobs/${String(triggered.body.id)}/release`, tokens.operator, {
        force: true,
      });
      assert.equal(force.status, 403);

      const made = await call('POST', '/api/v1/tokens', tokens.admin, { name: 'ci', role: 'reader' });
      assert.equal(made.status, 201);
      assert.match(String(made.body.token), /^cft_/);
      const listed = await call('GET', '/api/v1/tokens', tokens.admin);
      assert.ok(!JSON.stringify(listed.body).includes(String(made.body.token)), 'tokens are never listed');
      assert.equal((await call('GET', '/api/v1/vaults', String(made.body.token))).status, 200);
      assert.equal((await call('DELETE', '/api/v1/tokens/ci', tokens.admin)).status, 200);
      assert.equal(
        (await call('GET', '/api/v1/vaults', String(made.body.token))).status,
        401,
        'a revoked token is refused',
      );

      const audit = await call('GET', '/api/v1/audit', tokens.admin);
      const entries = audit.body as unknown as { actor: string; action: string }[];
      assert.ok(entries.some((e) => e.actor === 'token:admin-bot' && e.action === 'token.create'));
      assert.ok(entries.some((e) => e.actor === 'token:admin-bot' && e.action === 'token.revoke'));
    });
  });
}
