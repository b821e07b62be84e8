import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';
import { ARTICLES, ERROR_CODES, articleFor, placeholdersIn, type ErrorCode } from '../../src/errors/index.js';

// Commands and flags come from the real command tree: a step that names anything else would
// send an operator to something that does not exist.
const PROGRAM = buildProgram(() => undefined);

/** Resolves `coffer ...` text to its command and checks every --flag it uses exists there. */
function checkCommand(text: string): string | null {
  const words = text.split(/\s+/).filter(Boolean);
  let cmd: Command = PROGRAM;
  const allowed = new Set(PROGRAM.options.map((o) => o.long));
  let i = 0;
  // Global options stand before the subcommand.
  while (words[i]?.startsWith('--')) {
    if (!allowed.has(words[i])) return `unknown global option ${words[i]}`;
    i += 2;
  }
  while (i < words.length) {
    const sub = cmd.commands.find((c) => c.name() === words[i]);
    if (!sub) break;
    cmd = sub;
    i++;
  }
  if (cmd === PROGRAM) return words[i] === 'COMMAND' ? null : `unknown command ${words[i]}`;
  for (const o of cmd.options) allowed.add(o.long);
  allowed.add('--help');
  for (const w of words.slice(i)) {
    const flag = /^(--[a-z-]+)/.exec(w)?.[1];
    if (flag && !allowed.has(flag)) return `unknown option ${flag} for '${cmd.name()}'`;
  }
  return null;
}

// Placeholders may only read what error contexts carry (the blockingJob shape and the
// generic keys), so a typo cannot silently fall back forever.
const CONTEXT_PATHS = new Set([
  'item',
  'vault',
  'field',
  'path',
  'jobId',
  'requiredRole',
  'policy',
  'workerId',
  'location',
  'reason',
  ...[
    'id',
    'operation',
    'vaultId',
    'vaultName',
    'itemId',
    'itemName',
    'state',
    'createdAt',
    'startedAt',
    'progressPercent',
    'trigger',
    'leaseExpiresAt',
    'workerId',
    'etaSeconds',
  ].map((key) => `blockingJob.${key}`),
]);

function commandsIn(step: string): string[] {
  return [...step.matchAll(/`coffer ([^`]*)`/g)].map((match) => match[1] ?? '');
}

test('every code has exactly one article, keyed by its own code', () => {
  assert.deepEqual(Object.keys(ARTICLES).sort(), [...ERROR_CODES].sort());
  for (const code of ERROR_CODES) {
    assert.equal(ARTICLES[code].code, code);
    assert.equal(articleFor(code), ARTICLES[code]);
  }
});

test('every article has a title, a one-sentence description, steps and docs', () => {
  for (const code of ERROR_CODES) {
    const a = ARTICLES[code];
    assert.ok(a.title.length > 0 && !a.title.endsWith('.'), `${code}: title`);
    assert.match(a.description, /^[^\n]+[.]$/, `${code}: description is one line ending in a full stop`);
    assert.equal(placeholdersIn(a.description).length, 0, `${code}: description has no placeholders`);
    assert.ok(a.recommendedSteps.length >= 1, `${code}: at least one step`);
    assert.ok(a.docs.length >= 1, `${code}: at least one doc link`);
    for (const link of a.docs) {
      assert.ok(link.title.length > 0, `${code}: doc link title`);
      assert.match(link.href, /^docs\/[\w-]+\.md#[\w-]+$/, `${code}: ${link.href}`);
    }
  }
});

test('every step names only real coffer commands', () => {
  for (const code of ERROR_CODES) {
    for (const step of ARTICLES[code].recommendedSteps) {
      for (const command of commandsIn(step)) {
        const problem = checkCommand(command);
        assert.equal(problem, null, `${code}: \`coffer ${command}\`: ${problem}`);
      }
    }
  }
});

test('every placeholder reads a known context path and has a fallback', () => {
  for (const code of ERROR_CODES) {
    for (const step of ARTICLES[code].recommendedSteps) {
      for (const path of placeholdersIn(step)) {
        assert.ok(CONTEXT_PATHS.has(path), `${code}: unknown placeholder path ${path}`);
      }
      for (const match of step.matchAll(/\{[^{}]*\}/g)) {
        assert.match(match[0], /\|[^{}]+\}$/, `${code}: placeholder ${match[0]} needs a fallback`);
      }
    }
  }
});

test('exit code 75 belongs to the in-progress refusal alone; 2 to usage errors', () => {
  for (const code of ERROR_CODES) {
    const expected = code === 'UserErrorBackupOperationInProgress' ? 75 : code === 'InvalidRequest' ? 2 : 1;
    assert.equal(ARTICLES[code].exitCode, expected, code);
  }
});

test('HTTP statuses: 409 for the refusal, 404 for lookups, 500 for InternalError only', () => {
  const expected: Partial<Record<ErrorCode, number>> = {
    UserErrorBackupOperationInProgress: 409,
    InvalidRequest: 400,
    StorageFull: 507,
    InternalError: 500,
  };
  for (const code of ERROR_CODES) {
    const status = ARTICLES[code].httpStatus;
    assert.ok(Number.isInteger(status) && status >= 400 && status <= 599, `${code}: ${status}`);
    if (code.endsWith('NotFound')) assert.equal(status, 404, code);
    if (code !== 'InternalError') assert.notEqual(status, 500, code);
    if (expected[code] !== undefined) assert.equal(status, expected[code], code);
  }
});

test('the in-progress article walks through SPEC §1: list, wait, cancel, old vault, release, retry', () => {
  const a = ARTICLES.UserErrorBackupOperationInProgress;
  const steps = a.recommendedSteps.join('\n');
  assert.match(steps, /coffer job list --vault \{[^}]+\} --item \{[^}]+\} --state in_progress/);
  assert.match(steps, /coffer job show \{blockingJob\.id/);
  assert.match(steps, /coffer job cancel \{blockingJob\.id[^}]*\} --wait/);
  assert.match(steps, /old vault/);
  assert.match(steps, /coffer job release \{blockingJob\.id/);
  assert.match(steps, /coffer backup /);
  assert.match(steps, /exit code 75/);
  assert.equal(a.retryable, true);
  assert.ok(a.docs.some((link) => link.href.endsWith('#one-backup-at-a-time')));
});

test('articles are frozen so no adapter can change what the others show', () => {
  const a = ARTICLES.WorkerLost;
  assert.ok(Object.isFrozen(ARTICLES) && Object.isFrozen(a));
  assert.ok(Object.isFrozen(a.recommendedSteps) && Object.isFrozen(a.docs) && Object.isFrozen(a.docs[0]));
});

test('articleFor rejects a string that is not a code', () => {
  assert.throws(() => articleFor('NoSuchCode' as ErrorCode), RangeError);
  assert.throws(() => articleFor('toString' as ErrorCode), RangeError);
});
