/**
 * The dashboard's only way to the server: a thin fetch wrapper typed by api-types.ts, which is
 * generated from the live OpenAPI document. Paths, parameters, bodies and success bodies are
 * checked against the route schemas; every failure is the API's problem+json as an ApiError.
 */
import type { paths } from './api-types';

type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';
type Op<P extends keyof paths, M extends Method> = paths[P] extends { [K in M]: infer O } ? O : never;
/** The API paths that answer a method. */
export type PathsFor<M extends Method> = {
  [P in keyof paths]: paths[P] extends { [K in M]: unknown } ? P : never;
}[keyof paths];
type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : undefined;
type Success<O> = O extends { responses: infer R }
  ? JsonOf<R[Extract<keyof R, 200 | 201 | 202 | 204>]>
  : never;
type PathParams<O> = O extends { parameters: { path: infer T } } ? T : never;
type Query<O> = O extends { parameters: { query?: infer T } } ? T : never;
type Body<O> = O extends { requestBody: { content: { 'application/json': infer T } } } ? T : never;

export interface CallOptions<O> {
  path?: PathParams<O>;
  query?: Query<O>;
  body?: Body<O>;
  signal?: AbortSignal;
}

/** The problem+json body every failing route answers with (the 409 of a trigger has them all). */
export type Problem = JsonOf<paths['/api/v1/items/{item}/backups']['post']['responses'][409]> & {
  blockedInOtherVault?: boolean;
  field?: string;
  [key: string]: unknown;
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
  ) {
    super(problem ? `${problem.title}: ${problem.detail}` : `the server answered ${status}`);
  }
  get code(): string | null {
    return this.problem?.code ?? null;
  }
}

const TOKEN_KEY = 'coffer.token';

export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  setToken(token: string | null): void {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  /** Called when the API answers 401, so the app can ask for a token. */
  onUnauthenticated: (_error: ApiError): void => undefined,
};

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = { accept: 'application/json' };
  const token = session.token();
  if (token) h.authorization = `Bearer ${token}`;
  if (json) h['content-type'] = 'application/json';
  return h;
}

function url(path: string, params: unknown, query: unknown): string {
  const p = (params ?? {}) as Record<string, string>;
  let u = path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(String(p[name] ?? '')));
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const qs = q.toString();
  if (qs) u += `?${qs}`;
  return u;
}

export async function call<M extends Method, P extends PathsFor<M>>(
  method: M,
  path: P,
  opts: CallOptions<Op<P, M>> = {},
): Promise<Success<Op<P, M>>> {
  const hasBody = opts.body !== undefined;
  const res = await fetch(url(path, opts.path, opts.query), {
    method: method.toUpperCase(),
    headers: headers(hasBody),
    body: hasBody ? JSON.stringify(opts.body) : undefined,
    signal: opts.signal,
  });
  if (res.status === 204) return undefined as Success<Op<P, M>>;
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const problem = body && typeof body === 'object' && 'code' in body ? (body as Problem) : null;
    const error = new ApiError(res.status, problem);
    if (res.status === 401) session.onUnauthenticated(error);
    throw error;
  }
  return body as Success<Op<P, M>>;
}

export const get = <P extends PathsFor<'get'>>(path: P, opts?: CallOptions<Op<P, 'get'>>) =>
  call('get', path, opts);
export const post = <P extends PathsFor<'post'>>(path: P, opts?: CallOptions<Op<P, 'post'>>) =>
  call('post', path, opts);
export const patch = <P extends PathsFor<'patch'>>(path: P, opts?: CallOptions<Op<P, 'patch'>>) =>
  call('patch', path, opts);
export const put = <P extends PathsFor<'put'>>(path: P, opts?: CallOptions<Op<P, 'put'>>) =>
  call('put', path, opts);

/** One server-sent event from GET /api/v1/jobs/{id}/events. */
export interface StreamEvent {
  event: string;
  data: unknown;
}

/**
 * Follows a job's event stream. EventSource cannot send an Authorization header, so this reads
 * the stream with fetch. Resolves when the server sends `end` or the signal aborts; a dropped
 * connection is resumed after a second (the server sends the current state first).
 */
export async function followEvents(
  jobId: string,
  onEvent: (e: StreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    let ended = false;
    try {
      const res = await fetch(url('/api/v1/jobs/{id}/events', { id: jobId }, null), {
        headers: { ...headers(false), accept: 'text/event-stream' },
        signal,
      });
      if (res.status === 401) session.onUnauthenticated(new ApiError(401, null));
      if (!res.ok || !res.body) throw new ApiError(res.status, null);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          if (data.length === 0) continue;
          onEvent({ event, data: JSON.parse(data.join('\n')) });
          if (event === 'end') ended = true;
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) return;
    }
    if (ended) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}
