import { open, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { quoteIdent, type FileKind } from '@flashduck/core';
import { fileReaderSql as readerSql } from '@flashduck/core/duckdb';

/** A file read into a DuckDB table. */
export interface ReadFileResult {
  readonly rows: number;
  /** Columns with their types; `NULL` for a column with no value in this file (it takes other files' type). */
  readonly columns: { name: string; type: string }[];
}

/** Why a file could not be read, in words that name the file. */
export class FileReadError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(reason);
    this.name = 'FileReadError';
  }
}

/** Shortens DuckDB's message: no SQL echo, and the file named by its data-dir path. */
export function cleanReason(message: string, linkPath: string, relPath: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l && !/^LINE \d+:/.test(l) && !/^\s*\^/.test(l));
  return lines.slice(0, 8).join(' ').split(linkPath).join(relPath).replace(/\s+/g, ' ').slice(0, 2_000);
}

/**
 * DuckDB reads a JSON array cut off after an element (`[{...},`) as if it were complete, which would
 * silently drop the rest: a `.json` file that opens an array must also close it.
 */
async function checkJsonArrayComplete(file: string, relPath: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, 64));
    await fh.read(head, 0, head.length, 0);
    const first = /\S/.exec(head.toString('utf8').replace(/^\uFEFF/, ''))?.[0];
    if (first !== '[') return;
    const tailLen = Math.min(size, 64);
    const tail = Buffer.alloc(tailLen);
    await fh.read(tail, 0, tailLen, size - tailLen);
    const last = /\S(?=\s*$)/.exec(tail.toString('utf8'))?.[0];
    if (last !== ']') throw new FileReadError(relPath, 'the JSON array is not closed: the file looks cut off (no final "]")');
  } finally {
    await fh.close();
  }
}

const SNIFF_ERROR = /Could not convert|Conversion Error|Could not parse|sniff|Type mismatch|cast/i;

/**
 * Reads one data file into the table `target` (a qualified, quoted name) of `conn`. DuckDB sees it through a symlink with a plain name in
 * `linkDir`, so characters DuckDB would treat as a glob (`*`, `?`, `[`) or quotes in the real name
 * do not matter. CSV/JSON types are sniffed from a sample first; if a value past the sample does
 * not fit, the file is read again with the whole file as the sample (never a silent NULL).
 */
export async function readFileIntoTable(
  conn: DuckDBConnection,
  options: { absPath: string; relPath: string; kind: FileKind; target: string; linkDir: string; index: number },
): Promise<ReadFileResult> {
  const link = path.join(options.linkDir, `f${options.index}${options.kind.extension}`);
  await symlink(options.absPath, link);
  const target = options.target;
  const textFormat = options.kind.format !== 'parquet';
  const attempt = async (fullSample: boolean) => {
    await conn.run(`CREATE OR REPLACE TABLE ${target} AS SELECT * FROM ${readerSql(options.kind, link, fullSample)}`);
  };
  if (options.kind.format === 'json' && !options.kind.compression) await checkJsonArrayComplete(options.absPath, options.relPath);
  try {
    try {
      await attempt(false);
    } catch (err) {
      if (!textFormat || !SNIFF_ERROR.test((err as Error).message)) throw err;
      await attempt(true);
    }
  } catch (err) {
    throw new FileReadError(options.relPath, cleanReason((err as Error).message, link, options.relPath));
  }
  const described = await conn.runAndReadAll(`DESCRIBE ${target}`);
  const columns = described.getRowObjectsJS().map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
  if (columns.length === 0) throw new FileReadError(options.relPath, 'the file has no columns');
  const counts = await conn.runAndReadAll(
    `SELECT count(*)${columns.map((c) => `, count(${quoteIdent(c.name)})`).join('')} FROM ${target}`,
  );
  const row = counts.getRowsJS()[0] ?? [];
  const rows = Number(row[0] ?? 0);
  if (textFormat) {
    // Sniffed types of empty columns are guesses (VARCHAR): let them take the other files' types.
    columns.forEach((c, i) => {
      if (Number(row[i + 1] ?? 0) === 0) c.type = 'NULL';
    });
  }
  return { rows, columns };
}
