/**
 * Bad input never yields a 500 (SPEC §4). A seeded generator sends thousands of malformed
 * requests: random JSON and wrong types, unknown fields, huge and truncated bodies, wrong
 * content types, bad ids and cursors, path tricks, random methods and query strings. Every
 * answer must be a non-5xx, every error a problem+json with a catalog code, and the server
 * must still answer afterwards. The seed is printed so a failure can be replayed
 * (COFFER_FUZZ_SEED=…).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createApiWorld, type ApiWorld } from '../support/api.js';
import { dialects } from '../support/catalogs.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.COFFER_FUZZ_SEED ?? Date.now() % 1_000_000);
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'] as const;
// Keys that never make a body valid for routes that write to the filesystem (no path/target).
const KEYS = [
  'name',
  'vault',
  'role',
  'force',
  'readData',
  'limitReadBytesPerSec',
  'point',
  'schedule',
  'timezone',
  'overlap',
  'paused',
  'retention',
  'policy',
  'x',
  '__proto__',
  'constructor',
  '',
];
const TEMPLATES = [
  '/api/v1/items/{s}/backups',
  '/api/v1/items/{s}/restores',
  '/api/v1/items/{s}/move',
  '/api/v1/items/{s}/points',
  '/api/v1/items/{s}/policy',
  '/api/v1/items/{s}',
  '/api/v1/items',
  '/api/v1/vaults/{s}/checks',
  '/api/v1/vaults/{s}/prunes',
  '/api/v1/vaults/{s}',
  '/api/v1/vaults',
  '/api/v1/jobs',
  '/api/v1/jobs/{s}',
  '/api/v1/jobs/{s}/cancel',
  '/api/v1/jobs/{s}/retry',
  '/api/v1/jobs/{s}/release',
  '/api/v1/jobs/{s}/events',
  '/api/v1/errors/{s}',
  '/api/v1/policies/{s}',
  '/api/v1/policies',
  '/api/v1/tokens/{s}',
  '/api/v1/tokens',
  '/api/v1/audit',
  '/api/v1/insights',
  '/api/v1/{s}',
  '/{s}',
];

function generator(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const int = (n: number) => Math.floor(rand() * n);
  const str = (): string =>
    pick([
      () => '',
      () => 'docs',
      () => 'j_' + 'z'.repeat(16),
      () => '..',
      () => '%2e%2e%2f%2e%2e',
      () => '%00',
      () => 'a%2Fb',
      () => '\u202e\u0000evil',
      () => 'x'.repeat(int(6000)),
      () => '💾🗄️',
      () => String(int(1e9)),
      () => Math.random().toString(36).slice(2),
      () => '<script>alert(1)</script>',
      () => "' or 1=1 --",
    ])();
  const json = (depth = 0): unknown => {
    const k = int(depth > 3 ? 5 : 8);
    if (k === 0) return null;
    if (k === 1) return rand() * 1e12 - 5e11;
    if (k === 2) return rand() < 0.5;
    if (k === 3) return str();
    if (k === 4) return int(2 ** 31);
    if (k === 5) return Array.from({ length: int(5) }, () => json(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = 0; i < int(5); i++) o[pick(KEYS)] = json(depth + 1);
    return o;
  };
  return () => {
    const method = pick(METHODS);
    let url = pick(TEMPLATES).replace('{s}', () => encodeURIComponent(str()).slice(0, 3000));
    if (rand() < 0.4) {
      const q = Array.from(
        { length: int(5) },
        () =>
          `${pick(['limit', 'cursor', 'state', 'operation', 'since', 'until', 'vault', 'item', str().slice(0, 20)])}=${encodeURIComponent(JSON.stringify(json(3)) ?? '').slice(0, 200)}`,
      );
      url += '?' + q.join('&');
    }
    if (rand() < 0.05)
      url = url.replace('/api/v1/', pick(['/api/v1//', '/api/v1/./', '/api/v1/../v1/', '/API/V1/']));
    const headers: Record<string, string> = {};
    let payload: string | undefined;
    if (method !== 'GET' && method !== 'HEAD' && rand() < 0.85) {
      const shape = int(7);
      if (shape === 0) payload = 'x'.repeat(70_000 + int(100_000));
      else if (shape === 1) payload = JSON.stringify(json()).slice(0, int(40) + 1);
      else if (shape === 2) payload = '{"a":' + '['.repeat(int(500));
      else payload = JSON.stringify(json());
      headers['content-type'] = pick([
        'application/json',
        'application/json',
        'application/json',
        'text/plain',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/json; charset=latin1',
      ]);
      if (rand() < 0.05) delete headers['content-type'];
    }
    if (rand() < 0.1)
      headers['idempotency-key'] = str()
        .slice(0, 300)
        .replace(/[^\x20-\x7e]/g, '?');
    if (rand() < 0.05)
      headers.authorization = `Bearer ${str()
        .slice(0, 200)
        .replace(/[^\x20-\x7e]/g, '?')}`;
    return { method, url, headers, payload };
  };
}

for (const dialect of await dialects()) {
  describe(`HTTP fuzz (${dialect})`, () => {
    let w: ApiWorld;
    before(async () => {
      w = await createApiWorld(dialect);
      await w.seed('main', ['docs']);
    });
    after(() => w.close());

    test('thousands of malformed requests: no 5xx, every error is problem+json with a catalog code', async () => {
      const count = dialect === 'sqlite' ? 3000 : 1500;
      const seed = SEED + (dialect === 'sqlite' ? 0 : 1);
      const next = generator(mulberry32(seed));
      console.log(`fuzz ${dialect}: seed ${seed}, ${count} requests`);
      const statuses = new Map<number, number>();
      for (let i = 0; i < count; i++) {
        const req = next();
        const res = await w.http.api.inject({
          method: req.method,
          url: req.url,
          headers: req.headers,
          payload: req.payload,
        });
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        const where = `seed ${seed} #${i}: ${req.method} ${req.url.slice(0, 200)} (${req.headers['content-type'] ?? 'no content-type'}) -> ${res.statusCode} ${res.body.slice(0, 300)}`;
        assert.ok(res.statusCode < 500, where);
        if (res.statusCode >= 400 && req.method !== 'HEAD') {
          assert.match(String(res.headers['content-type']), /^application\/problem\+json/, where);
          const body = JSON.parse(res.body) as { code?: string; detail?: string };
          assert.ok(body.code && body.detail, where);
        }
      }
      console.log(`fuzz ${dialect}: statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
      assert.equal((await w.http.api.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      assert.equal((await w.http.api.inject({ method: 'GET', url: '/api/v1/items/docs' })).statusCode, 200);
    });
  });
}
