import { ARTICLES, articleFor, type ErrorArticle } from './articles.js';
import { ERROR_CODES, isErrorCode, type ErrorCode } from './codes.js';
import type { ErrorContext } from './coffer-error.js';

/**
 * Turns catalog articles and error contexts into what operators read. The CLI prints
 * formatErrorText / formatArticle, the HTTP API sends problemDetails, and the dashboard shows
 * problemDetails' fields, so all three show the same steps filled from the same context.
 */

/** What the renderers need from a failure; a CofferError satisfies it. */
export interface RenderableError {
  code: ErrorCode;
  message: string;
  context?: ErrorContext;
}

/** The job that blocks an operation, as carried in the `blockingJob` context key. */
export interface BlockingJob {
  id: string;
  operation: string;
  vaultId: string;
  vaultName: string;
  itemId: string;
  itemName: string;
  state: string;
  createdAt: string;
  startedAt: string | null;
  progressPercent: number | null;
  trigger: string;
  leaseExpiresAt: string | null;
  workerId: string | null;
  etaSeconds: number | null;
}

// ---------------------------------------------------------------------------------------------
// Placeholders

/**
 * `{a.b}`, `{a.b|fallback}`, `{a.b,c|fallback}`: dotted paths into the context, tried in order,
 * then the fallback. Fallback text may not contain braces, so a placeholder never nests.
 */
const PLACEHOLDER = /\{([A-Za-z_]\w*(?:\.\w+)*(?:,[A-Za-z_]\w*(?:\.\w+)*)*)(?:\|([^{}]*))?\}/g;

// Terminal control characters and bidi overrides: context values can come from operators
// (vault and item names), and must not be able to repaint or reorder the terminal.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const SHELL_SAFE = /^[\w.,:/@%+=-]+$/;

function lookup(context: ErrorContext, path: string): unknown {
  let value: unknown = context;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 ? value : undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** Removes characters that could drive a terminal; newlines and tabs survive. */
export function sanitizeText(text: string): string {
  return text.replace(UNSAFE_CHARS, '\uFFFD');
}

// Steps are often shell commands the operator copies; a value with spaces or shell syntax is
// quoted so the command still works when pasted.
function shellWord(text: string): string {
  const clean = sanitizeText(text).replace(/[\n\t]/g, ' ');
  return SHELL_SAFE.test(clean) ? clean : `'${clean.replace(/'/g, `'\\''`)}'`;
}

/** `vaultName` → `VAULT_NAME`: the fallback used when a template gives none. */
function metaVariable(path: string): string {
  const last = path.split(',')[0]?.split('.').pop() ?? 'value';
  return last.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** A template split once into literal text and placeholders (its paths and what stands in). */
type TemplatePart = string | { paths: string[]; otherwise: string };
const compiledTemplates = new Map<string, TemplatePart[]>();

// Refusals are rendered on every refused trigger (the API's hottest error), so each article
// step is parsed once rather than matched with the placeholder pattern on every request.
function compileTemplate(template: string): TemplatePart[] {
  let parts = compiledTemplates.get(template);
  if (parts) return parts;
  parts = [];
  let last = 0;
  for (const match of template.matchAll(PLACEHOLDER)) {
    const paths = match[1] ?? '';
    if (match.index > last) parts.push(template.slice(last, match.index));
    parts.push({ paths: paths.split(','), otherwise: match[2] ?? metaVariable(paths) });
    last = match.index + match[0].length;
  }
  if (last < template.length) parts.push(template.slice(last));
  // Templates are the catalog's fixed texts; the bound only guards against a caller that
  // passes made-up templates in a loop.
  if (compiledTemplates.size > 1000) compiledTemplates.clear();
  compiledTemplates.set(template, parts);
  return parts;
}

/** Fills the placeholders of one template from `context`; never leaves a `{...}` behind. */
export function fillTemplate(template: string, context: ErrorContext = {}): string {
  let out = '';
  for (const part of compileTemplate(template)) {
    if (typeof part === 'string') {
      out += part;
      continue;
    }
    let filled: string | undefined;
    for (const path of part.paths) {
      const text = scalarText(lookup(context, path));
      if (text !== undefined) {
        filled = shellWord(text);
        break;
      }
    }
    out += filled ?? part.otherwise;
  }
  return out;
}

/** The names of the placeholders in a template, e.g. `['blockingJob.id', 'jobId']`. */
export function placeholdersIn(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].flatMap((match) => (match[1] ?? '').split(','));
}

/** The article's steps with placeholders filled from `context` (or their fallbacks). */
export function renderSteps(article: ErrorArticle, context: ErrorContext = {}): string[] {
  return article.recommendedSteps.map((step) => fillTemplate(step, context));
}

// ---------------------------------------------------------------------------------------------
// Terminal text

export interface TextOptions {
  /** ANSI colour; the CLI decides (TTY, NO_COLOR), the renderer never looks at the process. */
  color?: boolean;
  /** The current time, to say whether a lease has expired; injectable for tests. */
  now?: Date;
}

interface Paint {
  error(text: string): string;
  bold(text: string): string;
  dim(text: string): string;
  /** Renders `code spans` of a step. */
  code(text: string): string;
}

const PLAIN: Paint = { error: (t) => t, bold: (t) => t, dim: (t) => t, code: (t) => t };
const ANSI: Paint = {
  error: (t) => `\u001b[1;31m${t}\u001b[0m`,
  bold: (t) => `\u001b[1m${t}\u001b[0m`,
  dim: (t) => `\u001b[2m${t}\u001b[0m`,
  code: (t) => t.replace(/`([^`]+)`/g, '\u001b[36m$1\u001b[0m'),
};

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

function safeArticle(code: string): ErrorArticle {
  // Rendering runs while reporting a failure, so an unknown code degrades instead of throwing.
  return isErrorCode(code) ? articleFor(code) : ARTICLES.InternalError;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function isoTime(value: unknown): string | undefined {
  const text = scalarText(value);
  if (text === undefined) return undefined;
  const time = new Date(text);
  return Number.isNaN(time.getTime()) ? sanitizeText(text) : time.toISOString();
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

function labelled(rows: [string, string][], paint: Paint): string[] {
  const width = Math.max(...rows.map(([label]) => label.length)) + 1;
  return rows.map(([label, value]) => `  ${paint.dim(`${label}:`.padEnd(width))} ${value}`);
}

function text(value: unknown): string | undefined {
  const scalar = scalarText(value);
  return scalar === undefined ? undefined : sanitizeText(scalar);
}

function nameWithId(name: unknown, id: unknown): string {
  const n = text(name);
  const i = text(id);
  if (n !== undefined && i !== undefined && n !== i) return `${n} (${i})`;
  return n ?? i ?? 'unknown';
}

function blockingJobRows(raw: Record<string, unknown>, now: Date): [string, string][] {
  const rows: [string, string][] = [];
  rows.push(['id', text(raw.id) ?? 'unknown']);
  rows.push(['operation', text(raw.operation) ?? 'unknown']);
  rows.push(['item', nameWithId(raw.itemName, raw.itemId)]);
  rows.push(['vault', nameWithId(raw.vaultName, raw.vaultId)]);
  rows.push(['state', text(raw.state) ?? 'unknown']);
  const started = isoTime(raw.startedAt);
  const created = isoTime(raw.createdAt);
  rows.push([
    'started at',
    started ?? (created === undefined ? 'not started yet' : `not started yet (queued at ${created})`),
  ]);
  const percent = typeof raw.progressPercent === 'number' ? raw.progressPercent : undefined;
  const eta = typeof raw.etaSeconds === 'number' ? raw.etaSeconds : undefined;
  let progress =
    percent === undefined || !Number.isFinite(percent)
      ? 'unknown'
      : `${Math.min(100, Math.max(0, percent)).toFixed(percent % 1 === 0 ? 0 : 1)}%`;
  if (eta !== undefined && Number.isFinite(eta)) progress += `, about ${duration(eta)} left`;
  rows.push(['progress', progress]);
  rows.push(['trigger', text(raw.trigger) ?? 'unknown']);
  const lease = isoTime(raw.leaseExpiresAt);
  let leaseText = lease ?? 'none (no worker has claimed it yet)';
  if (lease !== undefined && !Number.isNaN(Date.parse(lease)) && Date.parse(lease) < now.getTime()) {
    leaseText += ' (expired: its worker may have died)';
  }
  rows.push(['lease expires', leaseText]);
  rows.push(['worker', text(raw.workerId) ?? 'none yet']);
  return rows;
}

function genericValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const scalar = scalarText(value);
  if (scalar !== undefined) return sanitizeText(scalar);
  try {
    return sanitizeText(JSON.stringify(value) ?? String(value));
  } catch {
    return sanitizeText(String(value));
  }
}

function indent(block: string, prefix: string): string {
  return block
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}

function numbered(steps: string[], paint: Paint): string[] {
  const width = String(steps.length).length;
  return steps.map((step, i) => `  ${String(i + 1).padStart(width)}. ${paint.code(step)}`);
}

function docLines(article: ErrorArticle): string[] {
  return article.docs.map((link) => `  - ${link.title}: ${link.href}`);
}

/**
 * The terminal text shown after any failure: what happened, the facts in the context (first of
 * all the job that blocks the request), the steps to take, and where to read more.
 */
export function formatErrorText(err: RenderableError, opts: TextOptions = {}): string {
  const paint = opts.color === true ? ANSI : PLAIN;
  const now = opts.now ?? new Date();
  const code = String(err.code);
  const article = safeArticle(code);
  const context = err.context ?? {};
  const out: string[] = [];

  out.push(`${paint.error(`error[${sanitizeText(code)}]`)}: ${paint.bold(article.title)}`);
  const detail = sanitizeText(String(err.message ?? '')).trim();
  if (detail.length > 0 && detail !== article.title) out.push(indent(detail, '  '));

  const blockingJob = asRecord(context.blockingJob);
  if (blockingJob !== undefined) {
    out.push('', paint.bold('Blocking job:'), ...labelled(blockingJobRows(blockingJob, now), paint));
  }

  const extra: [string, string][] = [];
  for (const [key, value] of Object.entries(context)) {
    if (key === 'blockingJob' && blockingJob !== undefined) continue;
    const shown = genericValue(value);
    if (shown !== undefined) extra.push([sanitizeText(key), shown]);
  }
  if (extra.length > 0) out.push('', paint.bold('Details:'), ...labelled(extra, paint));

  out.push('', paint.bold('Recommended steps:'), ...numbered(renderSteps(article, context), paint));
  if (article.docs.length > 0) out.push('', paint.bold('Learn more:'), ...docLines(article));
  out.push('', `Run 'coffer explain ${article.code}' for the full article.`);
  return out.join('\n');
}

/** The full article printed by `coffer explain CODE`, with generic fallbacks in the steps. */
export function formatArticle(code: ErrorCode, opts: Pick<TextOptions, 'color'> = {}): string {
  const paint = opts.color === true ? ANSI : PLAIN;
  const article = articleFor(code);
  const reason = REASONS[article.httpStatus];
  const exitMeaning =
    article.exitCode === 75
      ? 'refused for now; scripts should retry later'
      : article.exitCode === 2
        ? 'usage error'
        : 'failure';
  return [
    `${paint.bold(article.title)} ${paint.dim(`[${article.code}]`)}`,
    '',
    article.description,
    '',
    paint.bold('Recommended steps:'),
    ...numbered(renderSteps(article), paint),
    '',
    paint.bold('Learn more:'),
    ...docLines(article),
    '',
    ...labelled(
      [
        ['Exit code', `${article.exitCode} (${exitMeaning})`],
        [
          'HTTP status',
          reason === undefined ? String(article.httpStatus) : `${article.httpStatus} ${reason}`,
        ],
        [
          'Retryable',
          article.retryable
            ? 'yes: the same request may succeed later without other action'
            : 'no: act on the steps above before trying again',
        ],
      ],
      paint,
    ).map((line) => line.slice(2)),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** RFC 9457 problem details, with coffer's extension members and the error's context. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  recommendedSteps: string[];
  docs: { title: string; href: string }[];
  retryable: boolean;
  instance?: string;
  [extension: string]: unknown;
}

const PROBLEM_MEMBERS = new Set([
  'type',
  'title',
  'status',
  'detail',
  'instance',
  'code',
  'recommendedSteps',
  'docs',
  'retryable',
]);

/** The URI reference that identifies a code's problem type; GET on it returns the article. */
export function problemType(code: ErrorCode): string {
  return `/api/v1/errors/${code}`;
}

/**
 * The `application/problem+json` body for an error. Context keys become extension members
 * (`blockingJob`, `item`, ...), except names RFC 9457 or coffer already use, which always keep
 * their standard meaning.
 */
export function problemDetails(err: RenderableError, instance?: string): ProblemDetails {
  const article = safeArticle(String(err.code));
  const context = err.context ?? {};
  const extensions = Object.fromEntries(
    Object.entries(context).filter(([key, value]) => !PROBLEM_MEMBERS.has(key) && value !== undefined),
  );
  const body: ProblemDetails = {
    ...extensions,
    type: problemType(article.code),
    title: article.title,
    status: article.httpStatus,
    detail: String(err.message ?? ''),
    code: article.code,
    recommendedSteps: renderSteps(article, context),
    docs: article.docs.map((link) => ({ ...link })),
    retryable: article.retryable,
  };
  if (instance !== undefined) body.instance = instance;
  return body;
}

// ---------------------------------------------------------------------------------------------
// docs/errors.md

export const ERROR_INDEX_BEGIN = '<!-- BEGIN error index: generated from src/errors/articles.ts -->';
export const ERROR_INDEX_END = '<!-- END error index -->';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/**
 * The table of every code that docs/errors.md holds between the markers above; a test keeps
 * the page equal to it, so the index can never drift from the catalog.
 */
export function errorIndexMarkdown(): string {
  const rows = ERROR_CODES.map((code) => {
    const a = ARTICLES[code];
    return `| \`${code}\` | ${cell(a.title)} | ${cell(a.description)} | ${a.httpStatus} | ${a.exitCode} | ${a.retryable ? 'yes' : 'no'} |`;
  });
  return [
    ERROR_INDEX_BEGIN,
    '',
    '| Code | Title | What happened | HTTP | Exit | Retryable |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    ERROR_INDEX_END,
  ].join('\n');
}
