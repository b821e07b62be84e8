/**
 * Bundles the compiled CLI (dist/src/cli/main.js) and the engine's worker thread into
 * dist/bundle/, which bin/coffer.js runs. Why: every `coffer` command used to load about 350
 * ES modules one by one (263 of them Kysely's), which cost about 0.4 s and 25 MB of resident
 * memory before the command did anything; a backup with nothing to do is mostly that start-up
 * (docs/backup-performance.md). Bundled, the CLI starts in a fraction of it.
 *
 * What stays outside the bundle: packages with native addons or files of their own that they
 * find by path (better-sqlite3, zstd-napi, fastify and its plugins, pino and its transports,
 * pg, the AWS SDK). They load as usual from node_modules, and only when a command needs them.
 * Code splitting keeps the server's code (`coffer serve`) out of the other commands' start-up.
 * Tests import the unbundled modules under dist/src; the CLI tests run the bundle.
 */
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = join(ROOT, 'dist');
const OUT = join(DIST, 'bundle');

/** Pure-JavaScript packages small enough to inline and slow to load module by module. */
const INLINE = new Set(['kysely', 'commander', 'croner', 'cli-progress']);

/** The package a bare import names ('@scope/name/sub' → '@scope/name'), or null for a path. */
function packageOf(spec) {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) return null;
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

await rm(OUT, { recursive: true, force: true });
await build({
  entryPoints: {
    coffer: join(DIST, 'src', 'cli', 'main.js'),
    // blob-pool.js starts its threads from './encode-worker.js' next to itself: here, the bundle.
    'encode-worker': join(DIST, 'src', 'engine', 'parallel', 'encode-worker.js'),
  },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: ['node20'],
  outdir: OUT,
  // Chunks sit next to the entries: code that finds files relative to itself (the worker) must
  // see the same directory whichever chunk it landed in.
  chunkNames: '[name]-[hash]',
  sourcemap: 'linked',
  legalComments: 'none',
  // The inlined CommonJS packages (commander, cli-progress) call require() for Node's modules.
  banner: {
    js: "import { createRequire as __cofferRequire } from 'node:module'; const require = __cofferRequire(import.meta.url);",
  },
  logLevel: 'warning',
  plugins: [
    {
      name: 'external-packages',
      setup(b) {
        b.onResolve({ filter: /.*/ }, (args) => {
          const pkg = packageOf(args.path);
          if (pkg === null || INLINE.has(pkg)) return undefined;
          return { path: args.path, external: true };
        });
      },
    },
  ],
});
