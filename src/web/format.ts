/** How times, sizes and durations read on the dashboard. */

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const s = Math.round(ms / 1000);
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

export function time(iso: string | null | undefined): string {
  if (!iso) return '–';
  return timeFmt.format(new Date(iso));
}

/** "3 min ago" / "in 2 h": for the overview, where the exact time is in the title. */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const diff = new Date(iso).getTime() - now;
  const abs = Math.abs(diff);
  const text = abs < 45_000 ? 'just now' : duration(abs).replace(/ \d+ (s|min)$/, '');
  if (text === 'just now') return text;
  return diff < 0 ? `${text} ago` : `in ${text}`;
}

export const stateLabel = (s: string): string => s.replace(/_/g, ' ');

/** The first 12 characters of a recovery point id, like the CLI shows. */
export const shortId = (id: string): string => id.slice(0, 12);
