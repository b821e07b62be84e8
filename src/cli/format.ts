/** Terminal formatting of sizes, times and tables, shared by every command. */
import { CofferError } from '../errors/coffer-error.js';
import { MAX_DB_POOL_SIZE } from '../app/config.js';

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${ms}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatTime(t: number | null | undefined): string {
  if (t === null || t === undefined) return '-';
  return new Date(t)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

export function isoOrNull(t: number | null | undefined): string | null {
  return t === null || t === undefined ? null : new Date(t).toISOString();
}

/** A plain left-aligned table; the last column is never padded so lines don't trail spaces. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/**
 * Parses `--since`/`--until`: an ISO date/time, or a duration back from now such as 30m, 24h,
 * 7d, 2w.
 */
export function parseTimeArg(value: string, field: string, now = Date.now()): number {
  const rel = /^(\d+)\s*(s|m|h|d|w)$/.exec(value.trim());
  if (rel) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[
      rel[2] as 's' | 'm' | 'h' | 'd' | 'w'
    ];
    return now - Number(rel[1]) * unit;
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) {
    throw new CofferError(
      'InvalidRequest',
      `${field} must be an ISO date/time or a duration like 30m, 24h, 7d (got '${value}')`,
      {
        field,
      },
    );
  }
  return t;
}

/** Parses a rate such as 500K, 20M, 1G (bytes per second; K = 1024). */
export function parseRate(value: string, field: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(i?B)?(\/s)?$/i.exec(value.trim());
  if (!m || Number(m[1]) <= 0) {
    throw new CofferError(
      'InvalidRequest',
      `${field} must be a positive rate such as 500K, 20M or 1G bytes per second (got '${value}')`,
      {
        field,
      },
    );
  }
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[
    (m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'
  ];
  return Math.round(Number(m[1]) * mult);
}

/** `--db-pool-size` of `serve` and `worker`; undefined leaves COFFER_DB_POOL_SIZE or the default. */
export function parseDbPoolSize(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parsePositiveInt(value, '--db-pool-size', MAX_DB_POOL_SIZE);
}

export function parsePositiveInt(value: string, field: string, max = 1_000_000): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new CofferError(
      'InvalidRequest',
      `${field} must be a whole number from 1 to ${max} (got '${value}')`,
      { field },
    );
  }
  return n;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
