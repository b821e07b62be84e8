/**
 * Summarises V8 CPU profiles (`node --cpu-prof`): self time per function and per source file,
 * across every thread's profile in a directory.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  share: number;
}

export interface ProfileSummary {
  files: string[];
  totalMs: number;
  functions: ProfileEntry[];
  modules: ProfileEntry[];
}

function shortUrl(url: string, repoRoot: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  if (u.startsWith(repoRoot)) return u.slice(repoRoot.length + 1).replace(/^dist\//, '');
  const nm = u.indexOf('node_modules/');
  if (nm >= 0) return u.slice(nm);
  return u;
}

export function summariseProfiles(dir: string, repoRoot: string, top = 15): ProfileSummary {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const byFn = new Map<string, ProfileEntry>();
  const byModule = new Map<string, ProfileEntry>();
  let totalMs = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile;
    const selfUs = new Map<number, number>();
    if (p.samples && p.timeDeltas) {
      // time of sample i is the delta to the next one
      for (let i = 0; i < p.samples.length; i++) {
        const dt = p.timeDeltas[i + 1] ?? 0;
        const id = p.samples[i]!;
        selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
      }
    } else {
      const total = p.endTime - p.startTime;
      const hits = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
      for (const n of p.nodes) selfUs.set(n.id, ((n.hitCount ?? 0) * total) / hits);
    }
    for (const n of p.nodes) {
      const us = selfUs.get(n.id) ?? 0;
      if (us === 0) continue;
      const where = shortUrl(n.callFrame.url, repoRoot);
      const name = n.callFrame.functionName || '(anonymous)';
      const key = `${name}@${where}:${n.callFrame.lineNumber + 1}`;
      const e = byFn.get(key) ?? {
        name,
        where: where ? `${where}:${n.callFrame.lineNumber + 1}` : '',
        selfMs: 0,
        share: 0,
      };
      e.selfMs += us / 1000;
      byFn.set(key, e);
      const mod = where || name;
      const me = byModule.get(mod) ?? { name: mod, where: '', selfMs: 0, share: 0 };
      me.selfMs += us / 1000;
      byModule.set(mod, me);
      totalMs += us / 1000;
    }
  }
  const finish = (m: Map<string, ProfileEntry>) =>
    [...m.values()]
      .map((e) => ({ ...e, share: totalMs ? e.selfMs / totalMs : 0 }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top);
  return { files, totalMs, functions: finish(byFn), modules: finish(byModule) };
}
