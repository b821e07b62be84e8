import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'node:test';
import { ARTICLES, ERROR_CODES, ERROR_INDEX_BEGIN, ERROR_INDEX_END } from '../../src/errors/index.js';
import { anchors, readRepoFile, repoRoot } from './markdown.js';

function resolves(href: string, from = ''): string | undefined {
  const [file = '', anchor] = href.split('#');
  const target = file === '' ? from : posix.normalize(posix.join(posix.dirname(from), file));
  if (!existsSync(join(repoRoot(), target))) return `missing file ${target}`;
  if (anchor !== undefined && target.endsWith('.md') && !anchors(readRepoFile(target)).has(anchor)) {
    return `no heading #${anchor} in ${target}`;
  }
  return undefined;
}

test('the three guidance pages and the error index exist', () => {
  for (const page of ['best-practices', 'backup-performance', 'restore-considerations', 'errors']) {
    assert.ok(existsSync(join(repoRoot(), 'docs', `${page}.md`)), page);
  }
});

test('every article link points at an existing file and heading', () => {
  for (const code of ERROR_CODES) {
    for (const link of ARTICLES[code].docs) {
      assert.equal(resolves(link.href), undefined, `${code}: ${link.href}`);
    }
  }
});

test('relative links between docs pages resolve too', () => {
  for (const name of readdirSync(join(repoRoot(), 'docs')).filter((f) => f.endsWith('.md'))) {
    const page = `docs/${name}`;
    const text = readRepoFile(page).replace(/```[\s\S]*?```/g, '');
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const href = match[1] ?? '';
      if (/^[a-z]+:/.test(href) || href.startsWith('/')) continue;
      assert.equal(resolves(href, page), undefined, `${page}: ${href}`);
    }
  }
});

test('docs/errors.md lists every code with its title, description and statuses', () => {
  const page = readRepoFile('docs/errors.md');
  const begin = page.indexOf(ERROR_INDEX_BEGIN);
  const end = page.indexOf(ERROR_INDEX_END);
  assert.ok(begin >= 0 && end > begin, 'index markers present');
  const rows = new Map<string, string[]>();
  for (const line of page.slice(begin, end).split('\n')) {
    const cells = line
      .split(/(?<!\\)\|/)
      .slice(1, -1)
      .map((cell) => cell.trim().replace(/\\\|/g, '|'));
    const code = /^`(\w+)`$/.exec(cells[0] ?? '')?.[1];
    if (code !== undefined) rows.set(code, cells);
  }
  // Regenerate with errorIndexMarkdown() from src/errors/render.ts, then run prettier.
  assert.deepEqual([...rows.keys()], [...ERROR_CODES], 'one row per code, in catalog order');
  for (const code of ERROR_CODES) {
    const a = ARTICLES[code];
    assert.deepEqual(
      rows.get(code)?.slice(1),
      [a.title, a.description, String(a.httpStatus), String(a.exitCode), a.retryable ? 'yes' : 'no'],
      code,
    );
  }
});
