/**
 * Every route of SPEC §4 over HTTP, in process with Fastify's inject(), against a real catalog
 * (both dialects) and real vaults: the trigger and its refusal, idempotent triggers, the old
 * vault's job blocking a moved item, the jobs view with filters and cursors, cancel, retry,
 * release, restores and checks run by a real worker pool, the self-help articles, health,
 * readiness and metrics. Status codes, field names and problem bodies are the public contract.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES } from '../../src/errors/codes.js';
import { articleFor } from '../../src/errors/index.js';
import { dialects } from '../support/catalogs.js';
import { assertProblem, createHttpWorld, MISSING_JOB, type HttpWorld, type Res } from './support.js';

interface JobBody {
  id: string;
  operation: string;
  state: string;
  trigger: string;
  retryOf: string | null;
  requestedBy: string | null;
  item: { id: string; name: string | null } | null;
  vault: { id: string; name: string | null };
  error: { code: string; message: string | null } | null;
  recoveryPointId: string | null;
  params: Record<string, unknown>;
  events?: { at: string; state: string; message: string | null }[];
}

const JSON_HEADERS = { 'content-type': 'application/json' };

for (const dialect of await dialects()) {
  describe(`HTTP API routes (${dialect})`, () => {
    let w: HttpWorld;
    const post = (url: string, payload: unknown = {}, headers: Record<string, string> = {}) =>
      w.req({
        method: 'POST',
        url,
        payload: JSON.stringify(payload),
        headers: { ...JSON_HEADERS, ...headers },
      });
    const get = (url: string) => w.req({ method: 'GET', url });
    const job = (r: Res, status = 202): JobBody => {
      assert.equal(r.status, status, r.body.slice(0, 500));
      assert.match(String(r.headers['content-type']), /^application\/json/);
      return r.json as JobBody;
    };

    before(async () => {
      w = await createHttpWorld(dialect);
      await w.vault('alpha');
      await w.vault('beta');
    });
    after(() => w.close());

    test('vaults: create, list, show; duplicates and bad bodies are problems naming the field', async () => {
      const r = await post('/api/v1/vaults', { name: 'gamma', path: join(w.root, 'vaults', 'gamma') });
      assert.equal(r.status, 201, r.body);
      assert.equal(r.json.name, 'gamma');
      assert.match(r.json.id, /^v_/);
      assert.equal(r.json.location, join(w.root, 'vaults', 'gamma'));
      assert.ok(!Number.isNaN(Date.parse(r.json.createdAt)));
      // The vault is real: its repository is on disk, encrypted with the server's password.
      await readFile(join(w.root, 'vaults', 'gamma', 'config'));

      const list = await get('/api/v1/vaults');
      assert.equal(list.status, 200);
      const names = (list.json as { name: string; items: number }[]).map((v) => v.name);
      for (const n of ['alpha', 'beta', 'gamma']) assert.ok(names.includes(n), `${n} in ${names.join()}`);

      const one = await get('/api/v1/vaults/gamma');
      assert.equal(one.status, 200);
      assert.equal(one.json.id, r.json.id);
      assert.equal(one.json.items, 0);
      assert.equal((await get(`/api/v1/vaults/${r.json.id as string}`)).json.name, 'gamma');

      const dup = await post('/api/v1/vaults', { name: 'gamma', path: join(w.root, 'vaults', 'gamma2') });
      assertProblem(dup, 409, 'VaultAlreadyExists');
      assertProblem(await get('/api/v1/vaults/nope'), 404, 'VaultNotFound');
      const missing = assertProblem(await post('/api/v1/vaults', { name: 'delta' }), 400, 'InvalidRequest');
      assert.equal(missing.field, 'body.path');
      const relative = assertProblem(
        await post('/api/v1/vaults', { name: 'delta', path: 'relative/dir' }),
        400,
        'InvalidRequest',
      );
      assert.equal(relative.field, 'body.path');
      const badName = assertProblem(
        await post('/api/v1/vaults', { name: '../x', path: join(w.root, 'x') }),
        400,
        'InvalidRequest',
      );
      assert.equal(badName.field, 'body.name');
      const extra = assertProblem(
        await post('/api/v1/vaults', { name: 'delta', path: join(w.root, 'd'), colour: 'red' }),
        400,
        'InvalidRequest',
      );
      assert.equal(extra.field, 'body.colour');
      // Compression is chosen at creation: a name or a zstd level; anything else names the field.
      const fast = await post('/api/v1/vaults', {
        name: 'fast',
        path: join(w.root, 'vaults', 'fast'),
        compression: 'fast',
      });
      assert.equal(fast.status, 201, fast.body);
      const level = await post('/api/v1/vaults', {
        name: 'l9',
        path: join(w.root, 'vaults', 'l9'),
        compression: 9,
      });
      assert.equal(level.status, 201, level.body);
      for (const compression of ['fastest', 20, -1, 2.5]) {
        const bad = assertProblem(
          await post('/api/v1/vaults', { name: 'epsilon', path: join(w.root, 'e'), compression }),
          400,
          'InvalidRequest',
        );
        assert.equal(bad.field, 'body.compression', JSON.stringify(compression));
      }
    });

    test('items: protect, list, show; errors for a missing vault, an unreadable source, a duplicate', async () => {
      await w.item('photos-src-holder', 'alpha'); // creates sources/photos-src-holder on disk
      const dir = join(w.root, 'sources', 'photos-src-holder');
      // The same directory twice is one item.
      assertProblem(
        await post('/api/v1/items', { name: 'photos', vault: 'alpha', path: dir }),
        409,
        'ItemAlreadyProtected',
      );
      await w.item('tmp-src', 'alpha', { 'x.txt': 'x' });
      const src = join(w.root, 'sources', 'docs-new');
      await mkdir(src, { recursive: true });
      const r = await post('/api/v1/items', { name: 'docs', vault: 'beta', path: src });
      assert.equal(r.status, 201, r.body);
      assert.equal(r.json.name, 'docs');
      assert.match(r.json.id, /^i_/);
      assert.equal(r.json.previousVaultId, null);

      const list = await get('/api/v1/items');
      assert.equal(list.status, 200);
      const docs = (list.json as { name: string; vaultName: string; lastJob: unknown }[]).find(
        (i) => i.name === 'docs',
      );
      assert.equal(docs?.vaultName, 'beta');
      assert.equal(docs?.lastJob, null);

      const one = await get('/api/v1/items/docs');
      assert.equal(one.status, 200);
      assert.equal(one.json.id, r.json.id);
      assert.equal(one.json.activeJob, null);
      assert.equal((await get(`/api/v1/items/${r.json.id as string}`)).json.name, 'docs');

      assertProblem(
        await post('/api/v1/items', { name: 'docs', vault: 'alpha', path: dir }),
        409,
        'ItemAlreadyProtected',
      );
      assertProblem(
        await post('/api/v1/items', { name: 'orphan', vault: 'nope', path: src }),
        404,
        'VaultNotFound',
      );
      assertProblem(
        await post('/api/v1/items', { name: 'ghost', vault: 'alpha', path: join(w.root, 'does-not-exist') }),
        422,
        'SourceUnreadable',
      );
      assertProblem(await get('/api/v1/items/nope'), 404, 'ItemNotFound');
      const wrongType = assertProblem(
        await post('/api/v1/items', { name: 'x', vault: { id: 7 }, path: src }),
        400,
        'InvalidRequest',
      );
      assert.ok(wrongType.field?.startsWith('body'), wrongType.field);
    });

    test('a second backup trigger is refused with 409 naming the blocking job and the steps', async () => {
      await w.item('web', 'alpha');
      const first = job(await post('/api/v1/items/web/backups'));
      assert.equal(first.state, 'queued');
      assert.equal(first.operation, 'backup');
      assert.equal(first.trigger, 'on-demand');
      assert.equal(first.requestedBy, 'local:127.0.0.1');
      assert.equal(first.item?.name, 'web');
      assert.equal(first.vault.name, 'alpha');

      const second = await post('/api/v1/items/web/backups');
      const p = assertProblem(second, 409, 'UserErrorBackupOperationInProgress');
      assert.ok(
        p.recommendedSteps.some((s) => s.includes(first.id)),
        'the steps name the blocking job',
      );
      assert.equal(p.retryable, true);
      assert.match(p.detail, new RegExp(first.id));
      const b = p.blockingJob as Record<string, unknown>;
      assert.equal(b.id, first.id);
      assert.equal(b.vaultName, 'alpha');
      assert.equal(b.state, 'queued');
      assert.ok('startedAt' in b && b.startedAt === null);
      assert.ok('progressPercent' in b && b.progressPercent === null);
      assert.equal(b.itemName, 'web');
      assert.equal(b.trigger, 'on-demand');
      assert.equal(p.blockedInOtherVault, false);
      assert.deepEqual(p.actions, ['wait', 'cancel', 'attach']);

      // The item shows its active job; a running job shows in the refusal with its start time.
      assert.equal((await get('/api/v1/items/web')).json.activeJob.id, first.id);
      job(await post(`/api/v1/jobs/${first.id}/cancel`));
      const item = await w.app.store.getItem('web');
      const running = await w.running(item.id, item.vaultId);
      const again = assertProblem(
        await post('/api/v1/items/web/backups'),
        409,
        'UserErrorBackupOperationInProgress',
      );
      const rb = again.blockingJob as Record<string, unknown>;
      assert.equal(rb.id, running.id);
      assert.equal(rb.state, 'in_progress');
      assert.equal(typeof rb.startedAt, 'string');
      assert.equal(rb.workerId, 'test-worker');
      assert.equal(typeof rb.leaseExpiresAt, 'string');

      const r = await post('/api/v1/items/nope/backups');
      assertProblem(r, 404, 'ItemNotFound');
    });

    test('an Idempotency-Key returns the same job with Idempotent-Replayed instead of a refusal', async () => {
      await w.item('idem', 'alpha');
      const key = `nightly-${dialect}-2026-11-25`;
      const first = await post('/api/v1/items/idem/backups', {}, { 'idempotency-key': key });
      const j1 = job(first);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      const replay = await post('/api/v1/items/idem/backups', {}, { 'idempotency-key': key });
      const j2 = job(replay);
      assert.equal(j2.id, j1.id);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      // Without the key (or with another one) the rule still refuses.
      assertProblem(await post('/api/v1/items/idem/backups'), 409, 'UserErrorBackupOperationInProgress');
      assertProblem(
        await post('/api/v1/items/idem/backups', {}, { 'idempotency-key': `${key}-other` }),
        409,
        'UserErrorBackupOperationInProgress',
      );
      // Even after the job ended, the key names the job it created.
      job(await post(`/api/v1/jobs/${j1.id}/cancel`));
      const late = await post('/api/v1/items/idem/backups', {}, { 'idempotency-key': key });
      assert.equal(job(late).id, j1.id);
      assert.equal(job(late).state, 'cancelled');
      const bad = assertProblem(
        await post('/api/v1/items/idem/backups', {}, { 'idempotency-key': 'has spaces in it' }),
        400,
        'InvalidRequest',
      );
      assert.equal(bad.field, 'headers.idempotency-key');
    });

    test('after item move, a trigger is blocked by the job in the OLD vault (blockedInOtherVault)', async () => {
      await w.item('mover', 'alpha');
      const inAlpha = job(await post('/api/v1/items/mover/backups'));
      assert.equal(inAlpha.vault.name, 'alpha');
      const moved = await post('/api/v1/items/mover/move', { vault: 'beta' });
      assert.equal(moved.status, 200, moved.body);
      const beta = await w.app.store.getVault('beta');
      const alpha = await w.app.store.getVault('alpha');
      assert.equal(moved.json.vaultId, beta.id);
      assert.equal(moved.json.previousVaultId, alpha.id);
      assert.equal((await get('/api/v1/items/mover')).json.vaultName, 'beta');

      const p = assertProblem(
        await post('/api/v1/items/mover/backups'),
        409,
        'UserErrorBackupOperationInProgress',
      );
      const b = p.blockingJob as Record<string, unknown>;
      assert.equal(b.id, inAlpha.id);
      assert.equal(b.vaultName, 'alpha');
      assert.equal(p.blockedInOtherVault, true);
      assert.equal(p.vault, 'beta');
      assert.ok(
        p.recommendedSteps.some((s) => s.includes('alpha')),
        'the steps point at the old vault',
      );

      job(await post(`/api/v1/jobs/${inAlpha.id}/cancel`));
      const inBeta = job(await post('/api/v1/items/mover/backups'));
      assert.equal(inBeta.vault.name, 'beta');
      assertProblem(await post('/api/v1/items/mover/move', { vault: 'nope' }), 404, 'VaultNotFound');
      assertProblem(await post('/api/v1/items/nope/move', { vault: 'beta' }), 404, 'ItemNotFound');
      const missing = assertProblem(await post('/api/v1/items/mover/move', {}), 400, 'InvalidRequest');
      assert.equal(missing.field, 'body.vault');
    });

    test('GET /api/v1/jobs filters by vault, item, state, operation, since and until', async () => {
      const v = await w.vault('filters');
      const a = await w.item('f-a', 'filters');
      const b = await w.item('f-b', 'filters');
      const ja = job(await post('/api/v1/items/f-a/backups'));
      const jb = job(await post('/api/v1/items/f-b/backups'));
      job(await post(`/api/v1/jobs/${jb.id}/cancel`));
      const jc = job(await post('/api/v1/vaults/filters/checks'));
      const list = async (q: string): Promise<string[]> => {
        const r = await get(`/api/v1/jobs?${q}`);
        assert.equal(r.status, 200, r.body);
        return (r.json.jobs as JobBody[]).map((j) => j.id);
      };
      assert.deepEqual(await list('vault=filters'), [jc.id, jb.id, ja.id]);
      assert.deepEqual(await list(`vault=${v.id}`), [jc.id, jb.id, ja.id]);
      assert.deepEqual(await list('item=f-a'), [ja.id]);
      assert.deepEqual(await list(`item=${b.id}`), [jb.id]);
      assert.deepEqual(await list('vault=filters&state=cancelled'), [jb.id]);
      assert.deepEqual(await list('vault=filters&state=queued,cancelled'), [jc.id, jb.id, ja.id]);
      assert.deepEqual(await list('vault=filters&operation=check'), [jc.id]);
      assert.deepEqual(await list('vault=filters&operation=backup&state=queued'), [ja.id]);
      assert.deepEqual(await list('vault=filters&since=1h'), [jc.id, jb.id, ja.id]);
      const future = new Date(Date.now() + 3600_000).toISOString();
      assert.deepEqual(await list(`vault=filters&since=${encodeURIComponent(future)}`), []);
      assert.deepEqual(await list('vault=filters&until=2000-01-01T00:00:00Z'), []);
      assert.deepEqual(await list(`vault=filters&until=${encodeURIComponent(future)}`), [
        jc.id,
        jb.id,
        ja.id,
      ]);
      // since/until bracket the middle job by its creation time.
      const created = async (id: string) => Date.parse((await get(`/api/v1/jobs/${id}`)).json.createdAt);
      const tb = await created(jb.id);
      const aBefore = (await created(ja.id)) < tb;
      const sinceB = await list(`vault=filters&since=${new Date(tb).toISOString()}`);
      assert.deepEqual(sinceB, aBefore ? [jc.id, jb.id] : [jc.id, jb.id, ja.id]);
      const untilB = await list(`vault=filters&until=${new Date(tb).toISOString()}`);
      assert.deepEqual(untilB, aBefore ? [ja.id] : []);
      assert.deepEqual(await list('vault=filters&item=f-a&state=cancelled'), []);
      void a;

      const bad = async (q: string, field: string) => {
        const p = assertProblem(await get(`/api/v1/jobs?${q}`), 400, 'InvalidRequest');
        assert.equal(p.field, field, p.detail);
      };
      await bad('state=running', 'querystring.state');
      await bad('operation=launch', 'querystring.operation');
      await bad('since=yesterday', 'querystring.since');
      await bad('until=not-a-time', 'querystring.until');
      await bad('limit=0', 'querystring.limit');
      await bad('limit=501', 'querystring.limit');
      await bad('limit=ten', 'querystring.limit');
      await bad('colour=red', 'querystring.colour');
      assertProblem(await get('/api/v1/jobs?vault=nope'), 404, 'VaultNotFound');
      assertProblem(await get('/api/v1/jobs?item=nope'), 404, 'ItemNotFound');
    });

    test('cursor pagination walks every job once, newest first, without gaps', async () => {
      await w.vault('pages');
      await w.item('p-item', 'pages');
      for (let i = 0; i < 6; i++) {
        const j = job(await post('/api/v1/items/p-item/backups'));
        job(await post(`/api/v1/jobs/${j.id}/cancel`));
      }
      for (let i = 0; i < 17; i++) job(await post('/api/v1/vaults/pages/checks', { readData: i % 2 === 0 }));
      const v = await w.app.store.getVault('pages');
      const expected = (await w.app.store.listJobs({ vaultId: v.id, limit: 1000 })).map((j) => j.id);
      assert.equal(expected.length, 23);

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const q: string = `vault=pages&limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const r = await get(`/api/v1/jobs?${q}`);
        assert.equal(r.status, 200, r.body);
        const page = r.json.jobs as JobBody[];
        assert.ok(page.length <= 5);
        seen.push(...page.map((j) => j.id));
        cursor = r.json.nextCursor as string | null;
        pages++;
        assert.ok(pages < 20, 'pagination does not terminate');
      } while (cursor);
      assert.equal(pages, 5);
      assert.deepEqual(seen, expected, 'every job once, newest first');
      assert.equal(new Set(seen).size, seen.length);
      // A filter applies on every page.
      const checks: string[] = [];
      cursor = null;
      do {
        const r = await get(
          `/api/v1/jobs?vault=pages&operation=check&limit=4${cursor ? `&cursor=${cursor}` : ''}`,
        );
        checks.push(...(r.json.jobs as JobBody[]).map((j) => j.id));
        cursor = r.json.nextCursor as string | null;
      } while (cursor);
      assert.equal(checks.length, 17);
      // Exactly a page: no empty trailing page is announced.
      const exact = await get('/api/v1/jobs?vault=pages&limit=23');
      assert.equal(exact.json.jobs.length, 23);
      assert.equal(exact.json.nextCursor, null);

      for (const c of ['not-a-cursor', Buffer.from('x_123').toString('base64url'), '%00', 'a'.repeat(65)]) {
        const p = assertProblem(await get(`/api/v1/jobs?cursor=${c}`), 400, 'InvalidRequest');
        assert.equal(p.field, 'querystring.cursor', p.detail);
      }
    });

    test('GET /api/v1/jobs/{id} shows the job with its events; unknown and malformed ids are problems', async () => {
      await w.item('shown', 'beta');
      const j = job(await post('/api/v1/items/shown/backups'));
      job(await post(`/api/v1/jobs/${j.id}/cancel`));
      const r = await get(`/api/v1/jobs/${j.id}`);
      assert.equal(r.status, 200);
      const d = r.json as JobBody;
      assert.equal(d.id, j.id);
      assert.equal(d.state, 'cancelled');
      assert.equal(d.error?.code, 'JobCancelled');
      assert.deepEqual(
        d.events?.map((e) => e.state),
        ['queued', 'cancelled'],
      );
      for (const e of d.events ?? []) assert.ok(!Number.isNaN(Date.parse(e.at)));
      assertProblem(await get(`/api/v1/jobs/${MISSING_JOB}`), 404, 'JobNotFound');
      const bad = assertProblem(await get('/api/v1/jobs/not-a-job'), 400, 'InvalidRequest');
      assert.equal(bad.field, 'params.id');

      // The event stream of an ended job: its state, then the end.
      const ev = await w.req({ method: 'GET', url: `/api/v1/jobs/${j.id}/events` });
      assert.equal(ev.status, 200);
      assert.match(String(ev.headers['content-type']), /^text\/event-stream/);
      assert.match(ev.body, /^event: state\n/);
      assert.match(ev.body, /event: end\nid: \d+\ndata: .*"state":"cancelled"/);
      assertProblem(await get(`/api/v1/jobs/${MISSING_JOB}/events`), 404, 'JobNotFound');
    });

    test('cancel: a queued job ends cancelled at once, a running one turns cancelling, an ended one is 409', async () => {
      const item = await w.item('cancel-me', 'alpha');
      const j = job(await post('/api/v1/items/cancel-me/backups'));
      const c = job(await post(`/api/v1/jobs/${j.id}/cancel`));
      assert.equal(c.state, 'cancelled');
      assert.equal(c.error?.code, 'JobCancelled');
      const twice = assertProblem(await post(`/api/v1/jobs/${j.id}/cancel`), 409, 'JobNotCancellable');
      assert.equal(twice.state, 'cancelled');

      const running = await w.running(item.id, item.vaultId);
      const cancelling = job(await post(`/api/v1/jobs/${running.id}/cancel`));
      assert.equal(cancelling.state, 'cancelling', 'truthful cancel: not cancelled until the worker stops');
      // Cancelling is idempotent while the worker has not acknowledged.
      assert.equal(job(await post(`/api/v1/jobs/${running.id}/cancel`)).state, 'cancelling');

      const done = await w.completed((await w.item('cancel-done', 'alpha')).id, item.vaultId);
      assertProblem(await post(`/api/v1/jobs/${done.id}/cancel`), 409, 'JobNotCancellable');
      assertProblem(await post(`/api/v1/jobs/${MISSING_JOB}/cancel`), 404, 'JobNotFound');
      assert.equal(assertProblem(await post('/api/v1/jobs/nope/cancel'), 400).field, 'params.id');
    });

    test('retry: 202 with a new job "retry of <id>"; a completed job is 409 JobNotRetryable', async () => {
      const item = await w.item('retry-me', 'alpha');
      const j = job(await post('/api/v1/items/retry-me/backups'));
      job(await post(`/api/v1/jobs/${j.id}/cancel`));
      const r = job(await post(`/api/v1/jobs/${j.id}/retry`));
      assert.notEqual(r.id, j.id);
      assert.equal(r.trigger, `retry of ${j.id}`);
      assert.equal(r.retryOf, j.id);
      assert.equal(r.state, 'queued');
      assert.equal(r.operation, 'backup');
      assert.equal(r.item?.name, 'retry-me');
      // While the retry is queued, retrying again is refused by the exclusivity rule.
      const busy = assertProblem(
        await post(`/api/v1/jobs/${j.id}/retry`),
        409,
        'UserErrorBackupOperationInProgress',
      );
      assert.equal((busy.blockingJob as { id: string }).id, r.id);
      // A retried backup goes to the item's current vault.
      job(await post(`/api/v1/jobs/${r.id}/cancel`));
      await post('/api/v1/items/retry-me/move', { vault: 'beta' });
      assert.equal(job(await post(`/api/v1/jobs/${j.id}/retry`)).vault.name, 'beta');

      const done = await w.completed((await w.item('retry-done', 'alpha')).id, item.vaultId);
      const p = assertProblem(await post(`/api/v1/jobs/${done.id}/retry`), 409, 'JobNotRetryable');
      assert.equal(p.state, 'completed');
      // A queued job is not retryable either (it has not ended).
      const queued = job(await post('/api/v1/items/retry-done/backups'));
      assertProblem(await post(`/api/v1/jobs/${queued.id}/retry`), 409, 'JobNotRetryable');
      assertProblem(await post(`/api/v1/jobs/${MISSING_JOB}/retry`), 404, 'JobNotFound');
    });

    test('release: a queued job is cancelled, a live lease needs force, force fences the worker', async () => {
      const item = await w.item('stuck', 'alpha');
      const queued = job(await post('/api/v1/items/stuck/backups'));
      const rq = await post(`/api/v1/jobs/${queued.id}/release`);
      assert.equal(job(rq, 200).state, 'cancelled');
      assertProblem(await post(`/api/v1/jobs/${queued.id}/release`), 409, 'JobNotCancellable');

      const running = await w.running(item.id, item.vaultId);
      const live = assertProblem(await post(`/api/v1/jobs/${running.id}/release`), 409, 'JobLeaseActive');
      assert.equal(live.workerId, 'test-worker');
      const forced = job(await post(`/api/v1/jobs/${running.id}/release`, { force: true }), 200);
      assert.equal(forced.state, 'failed');
      assert.equal(forced.error?.code, 'WorkerLost');
      // The item is free again.
      job(await post('/api/v1/items/stuck/backups'));
      const bad = assertProblem(await post(`/api/v1/jobs/${running.id}/release`, { force: 'yes' }), 400);
      assert.equal(bad.field, 'body.force');
      assertProblem(await post(`/api/v1/jobs/${MISSING_JOB}/release`), 404, 'JobNotFound');
    });

    test('self-help: GET /api/v1/errors and /api/v1/errors/{code} serve the catalog articles', async () => {
      const all = await get('/api/v1/errors');
      assert.equal(all.status, 200);
      assert.deepEqual(
        all.json,
        ERROR_CODES.map((c) => JSON.parse(JSON.stringify(articleFor(c))) as unknown),
      );
      for (const code of ERROR_CODES) {
        const r = await get(`/api/v1/errors/${code}`);
        assert.equal(r.status, 200, code);
        assert.deepEqual(r.json, JSON.parse(JSON.stringify(articleFor(code))), code);
      }
      // The problem's `type` resolves to its article.
      const p = assertProblem(await get('/api/v1/items/nope'), 404, 'ItemNotFound');
      assert.equal((await get(p.type)).json.code, 'ItemNotFound');
      assert.equal((await get('/api/v1/errors/userErrorBackupOperationInProgress')).status, 200);
      const unknown = assertProblem(await get('/api/v1/errors/NoSuchCode'), 400, 'InvalidRequest');
      assert.equal(unknown.field, 'params.code');
    });

    test('policies and insights: create, list, change, assign, in-use, delete', async () => {
      await w.item('scheduled', 'beta');
      const created = await post('/api/v1/policies', {
        name: 'nightly',
        schedule: '0 3 * * *',
        timezone: 'UTC',
        retention: { daily: 7 },
        overlap: 'queue-one',
      });
      assert.equal(created.status, 201, created.body);
      assert.equal(created.json.overlap, 'queue-one');
      assert.ok(Date.parse(created.json.nextRun) > Date.now());
      assert.ok((await get('/api/v1/policies')).json.some((p: { name: string }) => p.name === 'nightly'));
      const patched = await w.req({
        method: 'PATCH',
        url: '/api/v1/policies/nightly',
        payload: { paused: true },
      });
      assert.equal(patched.status, 200, patched.body);
      assert.equal(patched.json.paused, true);
      assert.equal(patched.json.nextRun, null);
      const assigned = await w.req({
        method: 'PUT',
        url: '/api/v1/items/scheduled/policy',
        payload: { policy: 'nightly' },
      });
      assert.equal(assigned.status, 200, assigned.body);
      assert.equal(assigned.json.policyId, created.json.id);
      assertProblem(await w.req({ method: 'DELETE', url: '/api/v1/policies/nightly' }), 409, 'PolicyInUse');
      await w.req({ method: 'PUT', url: '/api/v1/items/scheduled/policy', payload: { policy: null } });
      assert.equal((await w.req({ method: 'DELETE', url: '/api/v1/policies/nightly' })).status, 204);
      assertProblem(await get('/api/v1/policies/nightly'), 404, 'PolicyNotFound');
      const badCron = await post('/api/v1/policies', { name: 'bad', schedule: 'every day' });
      assert.ok(badCron.status >= 400 && badCron.status < 500, badCron.body);
      assertProblem(badCron, badCron.status);

      const insights = await get('/api/v1/insights');
      assert.equal(insights.status, 200);
      assert.ok(Array.isArray(insights.json));
    });

    test('health, readiness and Prometheus metrics with job gauges and refusal counters', async () => {
      const h = await get('/healthz');
      assert.equal(h.status, 200);
      assert.deepEqual(h.json, { status: 'ok' });
      const r = await get('/readyz');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { status: 'ready', catalog: dialect });

      await w.item('metered', 'alpha');
      job(await post('/api/v1/items/metered/backups'));
      assertProblem(await post('/api/v1/items/metered/backups'), 409, 'UserErrorBackupOperationInProgress');
      const m = await get('/metrics');
      assert.equal(m.status, 200);
      assert.match(String(m.headers['content-type']), /^text\/plain/);
      assert.match(m.body, /^# HELP coffer_jobs /m);
      assert.match(m.body, /^coffer_jobs\{state="queued",operation="backup"\} [1-9]\d*$/m);
      assert.match(
        m.body,
        /^coffer_admissions_refused_total\{code="UserErrorBackupOperationInProgress"\} [1-9]\d*$/m,
      );
      assert.match(m.body, /^coffer_admissions_total\{operation="backup"\} [1-9]\d*$/m);
      assert.match(
        m.body,
        /^coffer_http_requests_total\{method="POST",route="\/api\/v1\/items\/:item\/backups",status="409"\} /m,
      );

      // A draining process is alive but not ready.
      await w.rebuild({ draining: () => true });
      try {
        assert.equal((await get('/healthz')).status, 200);
        const d = await get('/readyz');
        assert.equal(d.status, 503);
        assert.deepEqual(d.json, { status: 'draining' });
      } finally {
        await w.rebuild();
      }
    });
  });

  describe(`HTTP API with a worker: points, restores, checks (${dialect})`, () => {
    let w: HttpWorld;
    const post = (url: string, payload: unknown = {}) =>
      w.req({ method: 'POST', url, payload: JSON.stringify(payload), headers: JSON_HEADERS });
    const get = (url: string) => w.req({ method: 'GET', url });

    before(async () => {
      w = await createHttpWorld(dialect);
      await w.vault('main');
      await w.vault('other');
      await w.item('home', 'main', {
        'notes.txt': 'remember the milk\n',
        'deep/dir/data.bin': 'x'.repeat(100_000),
      });
    });
    after(() => w.close());

    test('backup then points, restore of the latest and of a named point, check with read-data', async () => {
      assertProblem(
        await post('/api/v1/items/home/restores', { target: join(w.root, 'early') }),
        404,
        'PointNotFound',
      );
      const b = await post('/api/v1/items/home/backups');
      assert.equal(b.status, 202, b.body);
      await w.drain();
      const done = (await get(`/api/v1/jobs/${b.json.id as string}`)).json as JobBody;
      assert.equal(done.state, 'completed', JSON.stringify(done.error));
      assert.ok(done.recoveryPointId);
      assert.deepEqual(
        done.events?.map((e) => e.state),
        ['queued', 'in_progress', 'completed'],
      );

      const points = await get('/api/v1/items/home/points');
      assert.equal(points.status, 200);
      assert.equal(points.json.length, 1);
      const point = points.json[0] as { id: string; vaultName: string; files: number; jobId: string };
      assert.equal(point.id, done.recoveryPointId);
      assert.equal(point.vaultName, 'main');
      assert.equal(point.jobId, done.id);
      assert.equal(point.files, 2);
      assertProblem(await get('/api/v1/items/nope/points'), 404, 'ItemNotFound');
      const item = (await get('/api/v1/items/home')).json as {
        lastPoint: { id: string };
        lastJob: { id: string };
      };
      assert.equal(item.lastPoint.id, point.id);

      const target = join(w.root, 'restored');
      const r = await post('/api/v1/items/home/restores', { target });
      assert.equal(r.status, 202, r.body);
      assert.equal(r.json.operation, 'restore');
      assert.equal(r.json.params.pointId, point.id);
      const target2 = join(w.root, 'restored-sub');
      const r2 = await post('/api/v1/items/home/restores', {
        target: target2,
        point: point.id.slice(0, 12),
        path: 'deep',
      });
      assert.equal(r2.status, 202, r2.body);
      assert.equal(r2.json.params.pointId, point.id);
      // Restores and checks run beside a backup: they are not exclusive.
      const c = await post('/api/v1/vaults/main/checks', { readData: true });
      assert.equal(c.status, 202, c.body);
      assert.equal(c.json.operation, 'check');
      assert.equal(c.json.item, null);
      assert.equal(c.json.params.readData, true);
      await w.drain();
      for (const id of [r.json.id, r2.json.id, c.json.id] as string[]) {
        const j = (await get(`/api/v1/jobs/${id}`)).json as JobBody;
        assert.equal(j.state, 'completed', `${j.operation}: ${JSON.stringify(j.error)}`);
      }
      assert.equal(await readFile(join(target, 'notes.txt'), 'utf8'), 'remember the milk\n');
      assert.equal(await readFile(join(target, 'deep', 'dir', 'data.bin'), 'utf8'), 'x'.repeat(100_000));
      // A directory subpath restores its content into the target.
      assert.equal((await readFile(join(target2, 'dir', 'data.bin'))).length, 100_000);
      await assert.rejects(readFile(join(target2, 'notes.txt')));

      // A retry of a completed restore is refused; of a check that never ran, allowed.
      assertProblem(await post(`/api/v1/jobs/${r.json.id as string}/retry`), 409, 'JobNotRetryable');
      const c2 = await post('/api/v1/vaults/other/checks');
      assert.equal(c2.status, 202);
      await post(`/api/v1/jobs/${c2.json.id as string}/cancel`);
      const rc = await post(`/api/v1/jobs/${c2.json.id as string}/retry`);
      assert.equal(rc.status, 202, rc.body);
      assert.equal(rc.json.operation, 'check');
      assert.equal(rc.json.trigger, `retry of ${c2.json.id as string}`);

      assertProblem(
        await post('/api/v1/items/home/restores', { target: join(w.root, 'x'), point: 'deadbeefdeadbeef' }),
        404,
        'PointNotFound',
      );
      const rel = assertProblem(await post('/api/v1/items/home/restores', { target: 'relative' }), 400);
      assert.equal(rel.field, 'body.target');
      const noTarget = assertProblem(await post('/api/v1/items/home/restores', {}), 400);
      assert.equal(noTarget.field, 'body.target');
      const badPoint = assertProblem(
        await post('/api/v1/items/home/restores', { target: join(w.root, 'x'), point: 'XYZ' }),
        400,
      );
      assert.equal(badPoint.field, 'body.point');
      assertProblem(await post('/api/v1/vaults/nope/checks'), 404, 'VaultNotFound');
      assert.equal(
        assertProblem(await post('/api/v1/vaults/main/checks', { readData: 'maybe' }), 400).field,
        'body.readData',
      );
    });

    test('points say which retention rule keeps them; a prune (dry run, then real) forgets the rest', async () => {
      // A vault of its own, so the points of the test above do not matter here.
      await w.vault('kept');
      const item = await w.item('rotating', 'kept', { 'data.bin': 'a'.repeat(200_000) });
      const policy = await post('/api/v1/policies', {
        name: 'keep-two',
        schedule: '0 3 * * *',
        timezone: 'Europe/Berlin',
        retention: { last: 2 },
      });
      assert.equal(policy.status, 201, policy.body);
      const put = await w.req({
        method: 'PUT',
        url: '/api/v1/items/rotating/policy',
        payload: JSON.stringify({ policy: 'keep-two' }),
        headers: JSON_HEADERS,
      });
      assert.equal(put.status, 200, put.body);
      for (const fill of ['b', 'c', 'd']) {
        await writeFile(join(item.sourcePath, 'data.bin'), fill.repeat(200_000));
        assert.equal((await post('/api/v1/items/rotating/backups')).status, 202);
        await w.drain();
      }
      type PointBody = {
        id: string;
        retention: { keep: boolean; keptBy: { rule: string }[]; summary: string };
      };
      const before = (await get('/api/v1/items/rotating/points')).json as PointBody[];
      assert.deepEqual(
        before.map((p) => p.retention.summary),
        ['last #1', 'last #2', 'forgotten at the next prune'],
      );
      assert.deepEqual(before[0]!.retention.keptBy, [{ rule: 'last', period: '#1' }]);

      const dry = await post('/api/v1/vaults/kept/prunes', { dryRun: true });
      assert.equal(dry.status, 202, dry.body);
      assert.equal(dry.json.operation, 'prune');
      assert.equal(dry.json.params.dryRun, true);
      // One prune per vault: a second is refused while the first is queued.
      assertProblem(await post('/api/v1/vaults/kept/prunes'), 409, 'PruneInProgress');
      await w.drain();
      const dryJob = (await get(`/api/v1/jobs/${dry.json.id as string}`)).json as JobBody & {
        result: { pointsForgotten: number; gc: { bytesFreed: number; packsDeleted: number } };
      };
      assert.equal(dryJob.state, 'completed', JSON.stringify(dryJob.error));
      assert.equal(dryJob.result.pointsForgotten, 1);
      assert.ok(dryJob.result.gc.bytesFreed > 0, JSON.stringify(dryJob.result.gc));
      assert.equal(((await get('/api/v1/items/rotating/points')).json as PointBody[]).length, 3);

      const real = await post('/api/v1/vaults/kept/prunes', {});
      assert.equal(real.status, 202, real.body);
      await w.drain();
      const realJob = (await get(`/api/v1/jobs/${real.json.id as string}`)).json as typeof dryJob;
      assert.equal(realJob.state, 'completed', JSON.stringify(realJob.error));
      assert.equal(realJob.result.pointsForgotten, 1);
      // The dry run predicted exactly what the real run freed.
      assert.deepEqual(
        [realJob.result.gc.packsDeleted, realJob.result.gc.bytesFreed],
        [dryJob.result.gc.packsDeleted, dryJob.result.gc.bytesFreed],
      );
      const after = (await get('/api/v1/items/rotating/points')).json as PointBody[];
      assert.deepEqual(
        after.map((p) => p.id),
        before.slice(0, 2).map((p) => p.id),
      );
      assertProblem(await post('/api/v1/vaults/nope/prunes'), 404, 'VaultNotFound');
      assert.equal(
        assertProblem(await post('/api/v1/vaults/kept/prunes', { dryRun: 'yes' }), 400).field,
        'body.dryRun',
      );
    });
  });
}
