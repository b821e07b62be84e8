/**
 * Hot queries compiled once. Building a Kysely query and compiling it to SQL costs tens of
 * microseconds, which on the admission path (a trigger over HTTP) was as much as running it
 * (profiled). A prepared query is built once, on first use, with markers for its arguments;
 * each call then only swaps its arguments into the compiled parameter list. The SQL text is
 * stable, so the SQLite statement cache sees one statement. A prepared query belongs to one
 * catalog (one dialect): the store makes its own.
 */
import { CompiledQuery, type Compilable, type Insertable, type Kysely, type Selectable } from 'kysely';
import type { Database } from './schema.js';

/** A unique marker per argument position; never a value a caller could pass. */
const marker = (i: number): string => `\u0000coffer-arg-${i}\u0000`;

export interface PreparedQuery<A extends unknown[], R> {
  /** Runs the query with these arguments on `db` (the catalog or a transaction of it). */
  execute(db: Kysely<Database>, ...args: A): Promise<R[]>;
}

/**
 * `build` receives markers in place of its arguments and must use each one only as a value
 * (never to choose between query shapes), so that one compiled form fits every call.
 */
export function prepare<A extends unknown[], R>(
  arity: A['length'],
  build: (db: Kysely<Database>, ...args: A) => Compilable<R>,
): PreparedQuery<A, R> {
  let form: { sql: string; slots: (number | { value: unknown })[] } | undefined;
  const markers = Array.from({ length: arity }, (_, i) => marker(i)) as unknown as A;
  return {
    async execute(db, ...args) {
      if (!form) {
        const query = build(db, ...markers).compile();
        const slots = query.parameters.map((p) => {
          const i = markers.indexOf(p);
          return i >= 0 ? i : { value: p };
        });
        const used = new Set(slots.filter((s): s is number => typeof s === 'number'));
        if (used.size !== arity) {
          throw new Error(
            `prepared query uses ${used.size} of its ${arity} arguments as values: ${query.sql}`,
          );
        }
        form = { sql: query.sql, slots };
      }
      const parameters = form.slots.map((s) => (typeof s === 'number' ? args[s] : s.value));
      const result = await db.executeQuery<R>(CompiledQuery.raw(form.sql, parameters));
      return result.rows;
    },
  };
}

/**
 * An INSERT ... RETURNING * of a fixed set of columns: the row's values are the arguments, so
 * one compiled statement fits every row (absent optional values are passed as null).
 */
export function prepareInsert<
  T extends keyof Database,
  C extends readonly (keyof Insertable<Database[T]> & string)[],
>(
  table: T,
  columns: C,
): {
  execute(
    db: Kysely<Database>,
    row: Pick<Insertable<Database[T]>, C[number]>,
  ): Promise<Selectable<Database[T]>[]>;
} {
  const query = prepare<unknown[], Selectable<Database[T]>>(
    columns.length,
    (db, ...args) =>
      db
        .insertInto(table)
        .values(Object.fromEntries(columns.map((c, i) => [c, args[i]])) as Insertable<Database[T]>)
        .returningAll() as unknown as Compilable<Selectable<Database[T]>>,
  );
  return {
    execute: (db, row) =>
      query.execute(db, ...columns.map((c) => (row as Record<string, unknown>)[c] ?? null)),
  };
}
