/**
 * Admission cost inside the catalog alone (no HTTP): store.admit() on distinct items, in one
 * process, with C admissions in flight (1 = one after the other). Separates the store's cost
 * from the server's in the HTTP benchmark.
 *
 *   npm run build --silent && node dist/bench/catalog-admission.js [--pg] [--items 5000] [--concurrency 32]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createVault } from '../src/app/vaults.js';
import { addItems, createBenchCatalog, nowMs } from './lib/bench-catalog.js';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean', default: false },
    items: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '32' },
  },
});
const ITEMS = Number(values.items);
const CONCURRENCY = Number(values.concurrency);
const bc = await createBenchCatalog(values.pg);
try {
  await createVault(bc.app, 'bench', join(bc.home, 'vault'), 'bench');
  const names = Array.from({ length: ITEMS }, (_, i) => `i${i}`);
  await addItems(bc, 'bench', names, bc.dialect === 'postgres' ? 8 : 1);
  const items = await Promise.all(names.map((n) => bc.app.store.getItem(n)));
  for (const round of ['warm-up', 'measured']) {
    const n = round === 'warm-up' ? 500 : ITEMS;
    const todo = items.slice(0, n);
    const t0 = nowMs();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let it = todo.pop(); it; it = todo.pop()) {
          const a = await bc.app.store.admit({
            operation: round === 'warm-up' ? 'check' : 'backup',
            itemId: it.id,
            vaultId: it.vaultId,
            trigger: 'on-demand',
          });
          if (a.reused) throw new Error('reused');
        }
      }),
    );
    const ms = nowMs() - t0;
    console.log(
      `${bc.dialect} ${round}, ${CONCURRENCY} in flight: ${n} admissions in ${ms.toFixed(0)} ms = ${((n / ms) * 1000).toFixed(0)}/s, ${((ms / n) * 1000).toFixed(0)} µs each`,
    );
  }
} finally {
  await bc.close();
}
