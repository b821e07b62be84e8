import type { ErrorCode } from './codes.js';

/** Facts about the failure that the article's text does not know: the blocking job, a path, a field. */
export type ErrorContext = Record<string, unknown>;

/**
 * The one error type that crosses layers. Adapters (CLI, HTTP, dashboard) render it from the
 * catalog entry for `code`, so the message an operator sees is written once.
 */
export class CofferError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, detail: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(detail, options);
    this.name = 'CofferError';
    this.code = code;
    this.context = context;
  }
}

export function isCofferError(err: unknown, code?: ErrorCode): err is CofferError {
  return err instanceof CofferError && (code === undefined || err.code === code);
}
