/**
 * Group commit for the embedded SQLite catalog.
 *
 * On SQLite the COMMIT is the largest cost of a small write transaction (the WAL frames of
 * every touched table and index page, and the checkpoints they cause): measured at about 0.75 ms
 * of a 1.2 ms admission (bench/catalog-admission.ts). Write transactions that arrive while
 * another one holds the connection therefore run together: one `BEGIN IMMEDIATE`, each
 * transaction inside its own SAVEPOINT, one COMMIT.
 *
 * Each caller keeps the semantics of its own transaction: its statements see every earlier
 * transaction of the batch (they are serialised in arrival order), an error inside it rolls back
 * to its savepoint so it leaves no trace and the others are unaffected, and its promise settles
 * only after the COMMIT made its writes durable (or with the COMMIT's error, which undoes the
 * whole batch).
 */
import { type Kysely, sql } from 'kysely';

/** Most transactions in one batch. */
const MAX_BATCH = 128;
/**
 * No transaction joins a batch that has held the write lock this long, so other processes
 * waiting for the lock in SQLite's busy handler are not kept out for long; a few milliseconds
 * already share the COMMIT among dozens of admissions.
 */
const MAX_HOLD_MS = 4;

interface Pending<DB> {
  fn: (trx: Kysely<DB>) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

export function groupCommitWriter<DB>(
  db: Kysely<DB>,
): <T>(fn: (trx: Kysely<DB>) => Promise<T>) => Promise<T> {
  const queue: Pending<DB>[] = [];
  let draining = false;

  async function runBatch(batch: Pending<DB>[]): Promise<void> {
    let outcomes: Outcome[] = [];
    try {
      await db.connection().execute(async (conn) => {
        // IMMEDIATE: a deferred transaction that later writes fails with SQLITE_BUSY instead of
        // waiting for another process's write lock.
        await sql`begin immediate`.execute(conn);
        const locked = performance.now();
        try {
          for (let i = 0; i < batch.length; i++) {
            if (i > 0 && performance.now() - locked > MAX_HOLD_MS) {
              // The rest go first in the next batch, in their arrival order.
              queue.unshift(...batch.splice(i));
              break;
            }
            const p = batch[i]!;
            await sql`savepoint coffer_tx`.execute(conn);
            try {
              const value = await p.fn(conn);
              await sql`release coffer_tx`.execute(conn);
              outcomes.push({ ok: true, value });
            } catch (err) {
              await sql`rollback to coffer_tx`.execute(conn);
              await sql`release coffer_tx`.execute(conn);
              outcomes.push({ ok: false, err });
            }
          }
          await sql`commit`.execute(conn);
        } catch (err) {
          await sql`rollback`.execute(conn).catch(() => undefined);
          throw err;
        }
      });
    } catch (err) {
      // BEGIN or COMMIT failed: nothing of the batch is durable, so every caller gets the error.
      outcomes = batch.map(() => ({ ok: false, err }));
    }
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.err);
    });
  }

  async function drain(): Promise<void> {
    try {
      while (queue.length) await runBatch(queue.splice(0, MAX_BATCH));
    } finally {
      draining = false;
    }
  }

  return <T>(fn: (trx: Kysely<DB>) => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!draining) {
        draining = true;
        // Start after the current turn of the event loop: requests that arrived together (one
        // poll phase of many sockets) then share the first COMMIT instead of only the later ones.
        setImmediate(() => void drain());
      }
    });
}
