/** Reads the catalog and computes insights; shared by `coffer insights` and the API. */
import { computeInsights, type Insight } from '../insights/insights.js';
import type { AppContext } from './context.js';

const WINDOW_MS = 30 * 86_400_000;

export async function currentInsights(app: AppContext): Promise<Insight[]> {
  const now = app.clock.now();
  const data = await app.store.insightData(now - WINDOW_MS);
  // Workers heartbeat every leaseMs/6, at most 500 ms (jobs/lease-keeper.ts).
  const heartbeatMs = Math.max(100, Math.min(500, Math.floor(app.config.leaseMs / 6)));
  return computeInsights({ now, heartbeatMs, ...data });
}
