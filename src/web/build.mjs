/**
 * Builds the dashboard into dist/src/web: one minified ES module and one stylesheet under
 * assets/ with content hashes in their names, and index.html pointing at them. Type checking
 * is `tsc -p src/web/tsconfig.json` (part of `npm run build`); esbuild only bundles.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const SRC = dirname(fileURLToPath(import.meta.url));
const OUT = join(SRC, '..', '..', 'dist', 'src', 'web');

await rm(OUT, { recursive: true, force: true });
const result = await build({
  entryPoints: [join(SRC, 'main.tsx')],
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(OUT, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs);
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`esbuild wrote no script or stylesheet: ${outputs.join(', ')}`);
const html = (await readFile(join(SRC, 'index.html'), 'utf8'))
  .replace('%SCRIPT%', `/assets/${basename(js)}`)
  .replace('%STYLE%', `/assets/${basename(css)}`);
await mkdir(OUT, { recursive: true });
await writeFile(join(OUT, 'index.html'), html);

if (!process.argv.includes('--quiet')) {
  const size = async (f) => {
    const b = await readFile(f);
    return `${(b.length / 1024).toFixed(1)} kB (${(gzipSync(b).length / 1024).toFixed(1)} kB gzip)`;
  };
  console.log(`web: ${basename(js)} ${await size(js)}, ${basename(css)} ${await size(css)}`);
}
