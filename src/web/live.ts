/** Data hooks: one-shot loads with reload, and jobs kept live over their event streams. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, followEvents, get } from './api';
import { isActive, type Job, type ProgressEvent } from './types';

export interface Loaded<T> {
  data: T | null;
  error: ApiError | Error | null;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `key` changes and on reload(); keeps the previous data while reloading. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, key: string): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: Error | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const ctrl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    loadRef.current(ctrl.signal).then(
      (data) => !ctrl.signal.aborted && setState({ data, error: null, loading: false }),
      (error: Error) => !ctrl.signal.aborted && setState((s) => ({ ...s, error, loading: false })),
    );
    return () => ctrl.abort();
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Calls fn every `ms` while the page is visible. */
export function useEvery(ms: number, fn: () => void, enabled = true): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!enabled) return;
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') ref.current();
    }, ms);
    return () => clearInterval(t);
  }, [ms, enabled]);
}

// A browser keeps about six HTTP/1.1 connections per server; streams beyond this many would
// starve ordinary requests, so further active jobs are polled instead.
const MAX_STREAMS = 4;
let openStreams = 0;

/**
 * The job as it is now: `job` merged with its live `state` and `progress` events while it is
 * active. `onEnd` runs once when the job reaches a final state (e.g. to reload a timeline).
 */
export function useLiveJob<J extends Job>(job: J, onChange?: (j: Job) => void): J {
  const [live, setLive] = useState<J>(job);
  const changeRef = useRef(onChange);
  changeRef.current = onChange;
  // A newer copy from a reload replaces the live one (it is at least as recent).
  useEffect(() => setLive(job), [job]);
  const active = isActive(live.state);
  useEffect(() => {
    if (!active) return;
    const ctrl = new AbortController();
    const apply = (next: Partial<Job>) =>
      setLive((cur) => {
        const merged = { ...cur, ...next } as J;
        if (next.state && next.state !== cur.state) queueMicrotask(() => changeRef.current?.(merged));
        return merged;
      });
    if (openStreams < MAX_STREAMS) {
      openStreams++;
      void followEvents(
        job.id,
        ({ event, data }) => {
          if (event === 'state') apply(data as Job);
          else if (event === 'progress') apply(data as ProgressEvent);
        },
        ctrl.signal,
      ).finally(() => openStreams--);
    } else {
      const t = setInterval(async () => {
        try {
          apply(await get('/api/v1/jobs/{id}', { path: { id: job.id }, signal: ctrl.signal }));
        } catch {
          /* the next poll tries again */
        }
      }, 2000);
      ctrl.signal.addEventListener('abort', () => clearInterval(t));
    }
    return () => ctrl.abort();
  }, [job.id, active]);
  return live;
}
