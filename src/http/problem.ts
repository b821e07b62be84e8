/**
 * Every failure over HTTP is application/problem+json (RFC 9457) built from the error catalog,
 * the same entry the CLI prints. Bad input is a 4xx naming the field, never a 500.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { CofferError } from '../errors/coffer-error.js';
import { problemDetails } from '../errors/render.js';
import type { FastifyBaseLogger } from 'fastify';

export function sendProblem(
  reply: FastifyReply,
  err: CofferError,
  request: FastifyRequest,
  status?: number,
): FastifyReply {
  const body = problemDetails(err, request.url);
  if (status !== undefined) body.status = status;
  const blocking = err.context.blockingJob as { etaSeconds?: number | null } | undefined;
  if (blocking?.etaSeconds) reply.header('Retry-After', String(Math.max(1, Math.ceil(blocking.etaSeconds))));
  return reply.code(body.status).type('application/problem+json').send(body);
}

interface ValidationIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: { missingProperty?: string; additionalProperty?: string };
}

/** Names the offending field the way a client wrote it: `body.target`, `querystring.limit`. */
function fieldOf(context: string | undefined, issue: ValidationIssue | undefined): string {
  const where = context ?? 'request';
  if (!issue) return where;
  const path = (issue.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  const leaf = issue.params?.missingProperty ?? issue.params?.additionalProperty;
  return [where, path, leaf].filter(Boolean).join('.');
}

export function toProblem(
  err: FastifyError | Error,
  log: FastifyBaseLogger,
): { error: CofferError; status?: number } {
  if (err instanceof CofferError) return { error: err };
  const fe = err as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
  if (fe.validation) {
    const issue = fe.validation[0];
    const field = fieldOf(fe.validationContext, issue);
    const why =
      issue?.keyword === 'additionalProperties'
        ? 'is not a known field'
        : issue?.keyword === 'required'
          ? 'is required'
          : (issue?.message ?? 'is invalid');
    return { error: new CofferError('InvalidRequest', `${field} ${why}`, { field }) };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        error: new CofferError('InvalidRequest', 'the request body is too large', { field: 'body' }),
        status: 413,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        error: new CofferError('InvalidRequest', 'send the request body as application/json', {
          field: 'content-type',
        }),
        status: 415,
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return {
        error: new CofferError('InvalidRequest', 'the JSON body is empty; send {} for no options', {
          field: 'body',
        }),
      };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return {
        error: new CofferError('InvalidRequest', `the body is not valid JSON: ${fe.message}`, {
          field: 'body',
        }),
      };
  }
  if (err instanceof SyntaxError)
    return {
      error: new CofferError('InvalidRequest', `the body is not valid JSON: ${err.message}`, {
        field: 'body',
      }),
    };
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    return { error: new CofferError('InvalidRequest', fe.message, { field: 'request' }), status };
  }
  log.error({ err }, 'unexpected error serving a request');
  return {
    error: new CofferError('InternalError', 'the server failed unexpectedly; the details are in its log'),
  };
}
