import { readFile } from 'node:fs/promises';
import type { SnapshotFormat } from '../messages.js';
import { quoteIdent, quoteLiteral } from '../sql.js';
import { closeDuckDB, openDuckDB, type DuckDBOptions } from './engine.js';
import { loadArrowStream } from './arrow.js';

/** A column of a stored snapshot. */
export interface SnapshotColumn {
  readonly name: string;
  readonly type: string;
}

/** SELECT list that casts each column to its snapshot type. */
export function castSelectList(columns: readonly SnapshotColumn[]): string {
  return columns.map((c) => `CAST(${quoteIdent(c.name)} AS ${c.type}) AS ${quoteIdent(c.name)}`).join(', ');
}

/**
 * Turns snapshot bytes (already in `source`) of any format into a DuckDB database file `dbFile`
 * holding one table named `table`. A `duckdb` snapshot already is such a file: nothing to do.
 */
export async function materializeSnapshot(options: {
  format: SnapshotFormat;
  source: string;
  dbFile: string;
  table: string;
  columns: readonly SnapshotColumn[];
  duckdb?: DuckDBOptions;
}): Promise<void> {
  const { format, source, dbFile, table, columns } = options;
  if (format === 'duckdb') {
    if (source !== dbFile) throw new Error('a duckdb snapshot is used in place: source and dbFile must be the same file');
    return;
  }
  const db = await openDuckDB(options.duckdb);
  try {
    await db.conn.run(`ATTACH ${quoteLiteral(dbFile)} AS snap`);
    const target = `snap.main.${quoteIdent(table)}`;
    if (format === 'parquet') {
      const select = columns.length ? castSelectList(columns) : '*';
      await db.conn.run(`CREATE TABLE ${target} AS SELECT ${select} FROM read_parquet(${quoteLiteral(source)})`);
    } else if (format === 'json') {
      if (columns.length === 0) {
        await db.conn.run(`CREATE TABLE ${target} AS SELECT 1 AS __empty WHERE false`);
      } else {
        const spec = columns.map((c) => `${quoteLiteral(c.name)}: ${quoteLiteral(c.type)}`).join(', ');
        await db.conn.run(
          `CREATE TABLE ${target} AS SELECT * FROM read_json(${quoteLiteral(source)}, format='newline_delimited', columns={${spec}})`,
        );
      }
    } else {
      const bytes = await readFile(source);
      await loadArrowStream(db.conn, bytes, { catalog: 'snap', table }, new Map(columns.map((c) => [c.name, c.type])));
    }
    await db.conn.run('DETACH snap');
  } finally {
    closeDuckDB(db);
  }
}
