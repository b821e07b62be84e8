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

  /**
   * An error that is an expected answer rather than a fault, such as a refused trigger: it is
   * built without a stack trace, which nobody reads and which cost more than the rest of a
   * refusal (capturing it walks the async stack).
   */
  static refusal(code: ErrorCode, detail: string, context: ErrorContext = {}): CofferError {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new CofferError(code, detail, context);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

export function isCofferError(err: unknown, code?: ErrorCode): err is CofferError {
  return err instanceof CofferError && (code === undefined || err.code === code);
}
