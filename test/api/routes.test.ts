/**
 * Every route of SPEC §4 over HTTP (Fastify inject) against real catalogs: triggers and
 * refusals, the jobs view with filters and cursors, cancel, retry, release, articles,
 * health and metrics. Bodies and statuses are the public contract.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorkerPool } from '../../src/app/worker.js';
import { articleFor } from '../../src/errors/index.js';
import { createApiWorld, type ApiWorld } from '../support/api.js';
import { dialects } from '../support/catalogs.js';

interface JobBody {
  id: string;
  state: string;
  trigger: string;
  vault: { name: string };
  requestedBy: string;
  progress: { bytesPerSecond: number | null };
}
interface ProblemBody {
  type: string;
  code: string;
  status: number;
  detail: string;
  field?: string;
  recommendedSteps: string[];
  blockingJob?: {
    id: string;
    vaultName: string;
    state: string;
    startedAt: string | null;
    progressPercent: number | null;
  };
  blockedInOtherVault?: boolean;
}

for (const dialect of await dialects()) {
  describe(`HTTP API routes (${dialect})`, () => {
    let w: ApiWorld;
    const call = async <T>(
      method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
      url: string,
      payload?: unknown,
      headers: Record<string, string> = {},
    ) => {
      const res = await w.http.api.inject({ method, url, payload: payload as never, headers });
      return {
        status: res.statusCode,
        headers: res.headers,
        body: (res.body ? JSON.parse(res.body) : null) as T,
        raw: res.body,
      };
    };

    before(async () => {
      w = await createApiWorld(dialect);
      await w.seed('alpha', ['docs', 'photos', 'mail']);
      await w.seed('beta', []);
    });
    after(() => w.close());

    test('vaults and items: list, show, create, move; unknown names are 404 problems', async () => {
      const vaults = await call<{ name: string; items: number }[]>('GET', '/api/v1/vaults');
      assert.equal(vaults.status, 200);
      assert.deepEqual(
        vaults.body.map((v) => [v.name, v.items]),
        [
          ['alpha', 3],
          ['beta', 0],
        ],
      );
      const items = await call<{ name: string; vaultName: string }[]>('GET', '/api/v1/items');
      assert.deepEqual(
        items.body.map((i) => i.name),
        ['docs', 'mail', 'photos'],
      );
      const one = await call<{ name: string; activeJob: unknown }>('GET', '/api/v1/items/docs');
      assert.equal(one.body.activeJob, null);
      const missing = await call<ProblemBody>('GET', '/api/v1/items/nope');
      assert.equal(missing.status, 404);
      assert.equal(missing.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(missing.body.code, 'ItemNotFound');
      const dup = await call<ProblemBody>('POST', '/api/v1/vaults', {
        name: 'alpha',
        path: `${w.root}/other`,
      });
      assert.equal(dup.status, 409);
      assert.equal(dup.body.code, 'VaultAlreadyExists');
    });

    test('a second trigger is 409 naming the blocking job; an idempotency key replays the same job', async () => {
      const first = await call<JobBody>('POST', '/api/v1/items/docs/backups');
      assert.equal(first.status, 202);
      assert.equal(first.body.state, 'queued');
      assert.equal(first.body.requestedBy, 'local:127.0.0.1');
      const second = await call<ProblemBody>('POST', '/api/v1/items/docs/backups', {});
      assert.equal(second.status, 409);
      assert.equal(second.body.code, 'UserErrorBackupOperationInProgress');
      assert.equal(second.body.type, '/api/v1/errors/UserErrorBackupOperationInProgress');
      assert.equal(second.body.blockingJob?.id, first.body.id);
      assert.equal(second.body.blockingJob?.vaultName, 'alpha');
      assert.equal(second.body.blockingJob?.state, 'queued');
      assert.ok(second.body.recommendedSteps.some((s) => s.includes(`coffer job cancel ${first.body.id}`)));
      const k1 = await call<JobBody>(
        'POST',
        '/api/v1/items/photos/backups',
        {},
        { 'idempotency-key': 'nightly-1' },
      );
      const k2 = await call<JobBody>(
        'POST',
        '/api/v1/items/photos/backups',
        {},
        { 'idempotency-key': 'nightly-1' },
      );
      assert.equal(k2.status, 202);
      assert.equal(k2.body.id, k1.body.id);
      assert.equal(k2.headers['idempotent-replayed'], 'true');
    });

    test('after a move the refusal names the job in the old vault', async () => {
      const move = await call<{ vaultId: string }>('POST', '/api/v1/items/docs/move', { vault: 'beta' });
      assert.equal(move.status, 200);
      const refused = await call<ProblemBody>('POST', '/api/v1/items/docs/backups');
      assert.equal(refused.status, 409);
      assert.equal(refused.body.blockingJob?.vaultName, 'alpha');
      assert.equal(refused.body.blockedInOtherVault, true);
      await call('POST', '/api/v1/items/docs/move', { vault: 'alpha' });
    });

    test('cancel, retry and release: states and catalog codes', async () => {
      const jobs = await call<{ jobs: JobBody[] }>('GET', '/api/v1/jobs?item=docs&state=queued');
      const queued = jobs.body.jobs[0]!;
      const cancelled = await call<JobBody>('POST', `/api/v1/jobs/${queued.id}/cancel`);
      assert.equal(cancelled.status, 202);
      assert.equal(cancelled.body.state, 'cancelled');
      const again = await call<ProblemBody>('POST', `/api/v1/jobs/${queued.id}/cancel`);
      assert.equal(again.status, 409);
      assert.equal(again.body.code, 'JobNotCancellable');
      const retry = await call<JobBody>('POST', `/api/v1/jobs/${queued.id}/retry`);
      assert.equal(retry.status, 202);
      assert.equal(retry.body.trigger, `retry of ${queued.id}`);
      // Run the queued jobs with a real worker pool, then a completed job cannot be retried.
      const stop = new AbortController();
      await startWorkerPool(w.app, { concurrency: 2, drain: true, signal: stop.signal }).done;
      const done = await call<JobBody>('GET', `/api/v1/jobs/${retry.body.id}`);
      assert.equal(done.body.state, 'completed');
      const notRetryable = await call<ProblemBody>('POST', `/api/v1/jobs/${retry.body.id}/retry`);
      assert.equal(notRetryable.status, 409);
      assert.equal(notRetryable.body.code, 'JobNotRetryable');
      const points = await call<{ id: string; vaultName: string }[]>('GET', '/api/v1/items/docs/points');
      assert.equal(points.body.length, 1);
      const release = await call<ProblemBody>('POST', `/api/v1/jobs/${retry.body.id}/release`, {});
      assert.equal(release.status, 409);
      const restore = await call<JobBody>('POST', '/api/v1/items/docs/restores', {
        target: `${w.root}/restore-docs`,
      });
      assert.equal(restore.status, 202);
      const check = await call<JobBody>('POST', '/api/v1/vaults/alpha/checks', { readData: true });
      assert.equal(check.status, 202);
      await startWorkerPool(w.app, { concurrency: 2, drain: true, signal: stop.signal }).done;
      assert.equal((await call<JobBody>('GET', `/api/v1/jobs/${restore.body.id}`)).body.state, 'completed');
      assert.equal((await call<JobBody>('GET', `/api/v1/jobs/${check.body.id}`)).body.state, 'completed');
    });

    test('the jobs view: filters and cursor pagination without gaps or duplicates', async () => {
      for (let i = 0; i < 7; i++) {
        await call('POST', '/api/v1/vaults/alpha/checks', {});
      }
      const all = await call<{ jobs: JobBody[] }>('GET', '/api/v1/jobs?limit=500');
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { body: { jobs: JobBody[]; nextCursor: string | null } } = await call(
          'GET',
          `/api/v1/jobs?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        );
        seen.push(...page.body.jobs.map((j) => j.id));
        cursor = page.body.nextCursor;
      } while (cursor);
      assert.deepEqual(
        seen,
        all.body.jobs.map((j) => j.id),
      );
      const checks = await call<{ jobs: { operation: string }[] }>(
        'GET',
        '/api/v1/jobs?operation=check&vault=alpha&since=1h',
      );
      assert.ok(checks.body.jobs.length >= 8 && checks.body.jobs.every((j) => j.operation === 'check'));
      const none = await call<{ jobs: unknown[] }>(
        'GET',
        `/api/v1/jobs?until=${encodeURIComponent('2000-01-01T00:00:00Z')}`,
      );
      assert.equal(none.body.jobs.length, 0);
      const badCursor = await call<ProblemBody>('GET', '/api/v1/jobs?cursor=bm9wZQ');
      assert.equal(badCursor.status, 400);
      assert.equal(badCursor.body.field, 'querystring.cursor');
      const badState = await call<ProblemBody>('GET', '/api/v1/jobs?state=running');
      assert.equal(badState.status, 400);
      assert.match(badState.body.field ?? '', /querystring\.state/);
      const detail = await call<{ events: { state: string }[] }>(
        'GET',
        `/api/v1/jobs/${all.body.jobs[0]!.id}`,
      );
      assert.equal(detail.body.events[0]!.state, 'queued');
    });

    test('articles, health, readiness, metrics', async () => {
      const article = await call<{ code: string; recommendedSteps: string[] }>(
        'GET',
        '/api/v1/errors/UserErrorBackupOperationInProgress',
      );
      assert.deepEqual(article.body, articleFor('UserErrorBackupOperationInProgress'));
      assert.equal((await call<unknown[]>('GET', '/api/v1/errors')).body.length > 20, true);
      assert.equal((await call<ProblemBody>('GET', '/api/v1/errors/NoSuchCode')).status, 400);
      assert.deepEqual((await call('GET', '/healthz')).body, { status: 'ok' });
      assert.equal((await call<{ status: string }>('GET', '/readyz')).body.status, 'ready');
      const metrics = await w.http.api.inject({ method: 'GET', url: '/metrics' });
      assert.equal(metrics.statusCode, 200);
      assert.match(metrics.body, /coffer_jobs\{state="completed",operation="backup"\} \d+/);
      assert.match(
        metrics.body,
        /coffer_admissions_refused_total\{code="UserErrorBackupOperationInProgress"\} [1-9]/,
      );
      assert.match(metrics.body, /coffer_http_requests_total/);
      const insights = await call<unknown[]>('GET', '/api/v1/insights');
      assert.equal(insights.status, 200);
    });

    test('policies over HTTP: create, assign, pause, refuse deleting one in use', async () => {
      const created = await call<{ name: string; nextRun: string }>('POST', '/api/v1/policies', {
        name: 'hourly',
        schedule: '0 * * * *',
        timezone: 'UTC',
        retention: { daily: 7 },
      });
      assert.equal(created.status, 201);
      assert.ok(created.body.nextRun);
      const bad = await call<ProblemBody>('POST', '/api/v1/policies', { name: 'bad', schedule: 'every day' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.field, 'schedule');
      assert.equal((await call('PUT', '/api/v1/items/mail/policy', { policy: 'hourly' })).status, 200);
      assert.equal(
        (await call<{ paused: boolean }>('PATCH', '/api/v1/policies/hourly', { paused: true })).body.paused,
        true,
      );
      const inUse = await call<ProblemBody>('DELETE', '/api/v1/policies/hourly');
      assert.equal(inUse.status, 409);
      assert.equal(inUse.body.code, 'PolicyInUse');
      await call('PUT', '/api/v1/items/mail/policy', { policy: null });
      assert.equal((await call('DELETE', '/api/v1/policies/hourly')).status, 204);
    });
  });
}
