/** Structured logs (pino, JSON lines on stderr). Every line of a job carries its job and item ids. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.COFFER_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination(2),
  );
}
