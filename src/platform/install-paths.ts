/**
 * Where coffer is installed, found from this module's own location. Why not a fixed `../..`:
 * the same code runs from dist/src/ (tests, the server's modules) and from the CLI bundle in
 * dist/bundle/ (src/cli/build-bundle.mjs), at different depths.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/** The directory holding coffer's package.json (the repository or the installed package). */
export function packageRoot(): string {
  if (root !== null) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`coffer: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
