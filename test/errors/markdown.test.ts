import assert from 'node:assert/strict';
import { test } from 'node:test';
import { anchors, slug } from './markdown.js';

test('slug follows GitHub: punctuation dropped, case folded, spaces become hyphens', () => {
  assert.equal(slug('Job states, cancel and retry'), 'job-states-cancel-and-retry');
  assert.equal(slug('Leases and WorkerLost'), 'leases-and-workerlost');
  assert.equal(slug('Exit code 75 in scripts'), 'exit-code-75-in-scripts');
  assert.equal(slug('The `coffer job release` command'), 'the-coffer-job-release-command');
  assert.equal(slug('snake_case stays'), 'snake_case-stays');
});

test('anchors skip fenced code and number repeated headings', () => {
  const md = ['# Title', '```sh', '# not a heading', '```', '## Again', '## Again'].join('\n');
  assert.deepEqual([...anchors(md)], ['title', 'again', 'again-1']);
});
