/** Content manifests of directory trees: what a byte-identical restore is compared against. */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Relative path -> sha256 of the content, for every regular file under dir (sorted). */
export async function manifest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (abs: string, rel: string): Promise<void> => {
    const entries = await readdir(abs, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(abs, e.name), r);
      else if (e.isFile())
        out.set(
          r,
          createHash('sha256')
            .update(await readFile(join(abs, e.name)))
            .digest('hex'),
        );
    }
  };
  await walk(dir, '');
  return out;
}

/** Differences between two manifests, as readable lines (empty when equal). */
export function manifestDiff(expected: Map<string, string>, actual: Map<string, string>): string[] {
  const diff: string[] = [];
  for (const [k, v] of expected) {
    const a = actual.get(k);
    if (a === undefined) diff.push(`missing ${k}`);
    else if (a !== v) diff.push(`content differs: ${k}`);
  }
  for (const k of actual.keys()) if (!expected.has(k)) diff.push(`unexpected ${k}`);
  return diff;
}
