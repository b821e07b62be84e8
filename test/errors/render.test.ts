import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ARTICLES,
  CofferError,
  ERROR_CODES,
  fillTemplate,
  formatArticle,
  formatErrorText,
  problemDetails,
  renderSteps,
  type BlockingJob,
} from '../../src/errors/index.js';

const NOW = new Date('2025-03-01T12:00:00.000Z');

const blockingJob: BlockingJob = {
  id: 'job_7f3a',
  operation: 'backup',
  vaultId: 'vlt_old',
  vaultName: 'archive-eu',
  itemId: 'itm_42',
  itemName: 'web-data',
  state: 'in_progress',
  createdAt: '2025-03-01T11:29:58.000Z',
  startedAt: '2025-03-01T11:30:00.000Z',
  progressPercent: 42,
  trigger: 'schedule',
  leaseExpiresAt: '2025-03-01T12:00:20.000Z',
  workerId: 'worker-b1',
  etaSeconds: 1500,
};

const refusal = new CofferError(
  'UserErrorBackupOperationInProgress',
  'a backup of web-data is already in progress (job job_7f3a)',
  { blockingJob, item: 'web-data' },
);

const LEAK = /\{[\w.,]+(\|[^{}]*)?\}/;

test('the refusal names the blocking job and fills the steps from it', () => {
  const out = formatErrorText(refusal, { now: NOW });
  const lines = out.split('\n');
  assert.equal(
    lines[0],
    'error[UserErrorBackupOperationInProgress]: A backup is already in progress for this item',
  );
  assert.match(out, /a backup of web-data is already in progress/);
  for (const fact of [
    'job_7f3a',
    'archive-eu (vlt_old)',
    'web-data (itm_42)',
    'in_progress',
    '2025-03-01T11:30:00.000Z',
    '42%, about 25m 00s left',
    'schedule',
    '2025-03-01T12:00:20.000Z',
    'worker-b1',
  ]) {
    assert.ok(out.includes(fact), `missing ${fact}`);
  }
  assert.match(out, /^Recommended steps:$/m);
  assert.match(out, /^ {2}1\. .*coffer job list --vault archive-eu --item web-data --state in_progress/m);
  assert.match(out, /coffer job show job_7f3a/);
  assert.match(out, /coffer job cancel job_7f3a --wait/);
  assert.match(out, /old vault \(here: archive-eu\)/);
  assert.match(out, /coffer job release job_7f3a/);
  assert.match(out, /^Learn more:$/m);
  assert.match(out, /docs\/best-practices\.md#one-backup-at-a-time/);
  assert.equal(lines.at(-1), "Run 'coffer explain UserErrorBackupOperationInProgress' for the full article.");
  assert.doesNotMatch(out, LEAK);
  // item is shown once as a generic detail; blockingJob is not dumped as JSON.
  assert.match(out, /^ {2}item: +web-data$/m);
  assert.doesNotMatch(out, /"vaultId"/);
});

test('a queued blocking job and an expired lease are described, not left blank', () => {
  const queued = {
    ...blockingJob,
    state: 'queued',
    startedAt: null,
    progressPercent: null,
    etaSeconds: null,
  };
  const out = formatErrorText({ ...refusal, context: { blockingJob: queued } }, { now: NOW });
  assert.match(out, /started at: +not started yet \(queued at 2025-03-01T11:29:58\.000Z\)/);
  assert.match(out, /progress: +unknown/);
  const stale = formatErrorText(refusal, { now: new Date('2025-03-01T12:05:00Z') });
  assert.match(stale, /lease expires: +2025-03-01T12:00:20\.000Z \(expired/);
  const unclaimed = { ...blockingJob, leaseExpiresAt: null, workerId: null };
  assert.match(formatErrorText({ ...refusal, context: { blockingJob: unclaimed } }), /worker: +none yet/);
});

test('no placeholder leaks for any code, with or without context', () => {
  const contexts = [
    {},
    { blockingJob },
    { item: 'x' },
    { blockingJob: { id: 'only-id' } },
    { blockingJob: null },
  ];
  for (const code of ERROR_CODES) {
    for (const context of contexts) {
      const err = { code, message: 'detail', context };
      for (const text of [
        formatErrorText(err),
        formatErrorText(err, { color: true }),
        JSON.stringify(problemDetails(err)),
        ...renderSteps(ARTICLES[code], context),
      ]) {
        assert.doesNotMatch(text, LEAK, `${code} with ${JSON.stringify(context)}`);
      }
    }
    assert.doesNotMatch(formatArticle(code), LEAK, code);
  }
});

test('missing values fall back to words that still read well', () => {
  const steps = renderSteps(ARTICLES.UserErrorBackupOperationInProgress, {});
  assert.match(steps[0] ?? '', /coffer job list --vault VAULT --item ITEM --state in_progress/);
  assert.match(steps[1] ?? '', /coffer job show JOB_ID/);
  assert.match(steps[3] ?? '', /old vault \(here: the vault named in the job\)/);
  // The generic `item` key stands in for the blocking job's item name when that is absent.
  assert.match(
    renderSteps(ARTICLES.UserErrorBackupOperationInProgress, { item: 'db' })[5] ?? '',
    /coffer backup db\b/,
  );
});

test('template rule: first present path wins, then the fallback, then a derived name', () => {
  assert.equal(fillTemplate('{a.b,c|none}', { a: { b: 'x' }, c: 'y' }), 'x');
  assert.equal(fillTemplate('{a.b,c|none}', { a: {}, c: 'y' }), 'y');
  assert.equal(fillTemplate('{a.b,c|none}', { a: { b: '' } }), 'none');
  assert.equal(fillTemplate('{blockingJob.vaultName}', {}), 'VAULT_NAME');
  assert.equal(fillTemplate('{n|N}', { n: 0 }), '0');
  assert.equal(fillTemplate('{o|O}', { o: { nested: true } }), 'O');
  assert.equal(fillTemplate('{constructor|C}', {}), 'C');
  assert.equal(fillTemplate('no {braces here', {}), 'no {braces here');
});

test('values that would break a pasted command are shell-quoted; control characters are neutralised', () => {
  assert.equal(fillTemplate('coffer backup {item|ITEM}', { item: 'my files' }), "coffer backup 'my files'");
  assert.equal(fillTemplate('coffer backup {item|ITEM}', { item: "it's" }), "coffer backup 'it'\\''s'");
  assert.equal(
    fillTemplate('coffer backup {item|ITEM}', { item: '$(rm -rf ~)' }),
    "coffer backup '$(rm -rf ~)'",
  );
  const hostile = formatErrorText({
    code: 'ItemNotFound',
    message: 'no item \u001b[2Jnamed x',
    context: { item: 'x\u001b]0;pwned\u0007' },
  });
  assert.ok(!hostile.includes('\u001b') && !hostile.includes('\u0007'), 'no raw ESC or BEL');
});

test('unknown context keys are shown generically as key: value lines', () => {
  const out = formatErrorText({
    code: 'SourceUnreadable',
    message: 'permission denied',
    context: { path: '/srv/data', errno: -13, extra: { a: 1 }, skipped: undefined },
  });
  assert.match(out, /^Details:$/m);
  assert.match(out, /^ {2}path: +\/srv\/data$/m);
  assert.match(out, /^ {2}errno: +-13$/m);
  assert.match(out, /^ {2}extra: +\{"a":1\}$/m);
  assert.doesNotMatch(out, /skipped/);
  assert.match(out, /sudo -u COFFER_USER ls -R \/srv\/data/);
});

test('colour is opt-in and only adds ANSI styling', () => {
  const plain = formatErrorText(refusal, { now: NOW });
  const colored = formatErrorText(refusal, { now: NOW, color: true });
  assert.ok(!plain.includes('\u001b'));
  assert.ok(colored.includes('\u001b['));
  const stripped = colored.split('\u001b[36m').join('').split('\u001b[0m').join('');
  assert.ok(stripped.includes('coffer job show job_7f3a'));
});

test('an unknown code at run time still renders, as an internal error', () => {
  const out = formatErrorText({ code: 'Bogus' as never, message: 'boom', context: {} });
  assert.match(out, /^error\[Bogus\]: Internal error/);
  assert.match(out, /coffer explain InternalError/);
});

test('problemDetails is an RFC 9457 body with coffer extensions and the context', () => {
  const body = problemDetails(refusal, '/api/v1/items/web-data/backups');
  assert.equal(body.type, '/api/v1/errors/UserErrorBackupOperationInProgress');
  assert.equal(body.title, ARTICLES.UserErrorBackupOperationInProgress.title);
  assert.equal(body.status, 409);
  assert.equal(body.detail, refusal.message);
  assert.equal(body.code, 'UserErrorBackupOperationInProgress');
  assert.equal(body.instance, '/api/v1/items/web-data/backups');
  assert.equal(body.retryable, true);
  assert.deepEqual(body.blockingJob, blockingJob);
  assert.equal(body.item, 'web-data');
  assert.ok(body.recommendedSteps.some((step) => step.includes('coffer job cancel job_7f3a --wait')));
  assert.deepEqual(body.docs, ARTICLES.UserErrorBackupOperationInProgress.docs);
  assert.deepEqual(JSON.parse(JSON.stringify(body)), body, 'serialisable as JSON');

  const noInstance = problemDetails({
    code: 'VaultNotFound',
    message: 'no vault x',
    context: { vault: 'x' },
  });
  assert.equal('instance' in noInstance, false);
  assert.equal(noInstance.status, 404);
});

test('context keys cannot overwrite the standard problem members', () => {
  const body = problemDetails({
    code: 'InvalidRequest',
    message: 'limit must be a positive integer',
    context: { field: 'limit', status: 200, type: 'about:blank', code: 'Nope' },
  });
  assert.equal(body.status, 400);
  assert.equal(body.type, '/api/v1/errors/InvalidRequest');
  assert.equal(body.code, 'InvalidRequest');
  assert.equal(body.field, 'limit');
  assert.ok(body.recommendedSteps[0]?.includes('limit'));
});

test('formatArticle is the whole article with generic fallbacks', () => {
  for (const code of ERROR_CODES) {
    const a = ARTICLES[code];
    const out = formatArticle(code);
    assert.ok(out.includes(`[${code}]`) && out.includes(a.title) && out.includes(a.description), code);
    assert.match(out, /^Recommended steps:$/m);
    assert.match(out, new RegExp(`^ {1,2}${a.recommendedSteps.length}\\. `, 'm'), `${code}: numbered`);
    for (const link of a.docs) assert.ok(out.includes(link.href), `${code}: ${link.href}`);
    assert.match(out, new RegExp(`Exit code: +${a.exitCode} `));
    assert.match(out, new RegExp(`HTTP status: +${a.httpStatus}`));
    assert.match(out, new RegExp(`Retryable: +${a.retryable ? 'yes' : 'no'}`));
  }
  assert.match(formatArticle('UserErrorBackupOperationInProgress'), /Exit code: +75 \(refused for now/);
});
