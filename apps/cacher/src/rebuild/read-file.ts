import { open, readFile, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { quoteIdent, type FileKind } from '@flashduck/core';
import { fileReaderSql, loadArrow } from '@flashduck/core/duckdb';
import { quoteLiteral } from '@flashduck/core';
import { csvOptionSql, skippedRows, type CsvOptions } from './table-options.js';

/** A file read into a DuckDB table. */
export interface ReadFileResult {
  readonly rows: number;
  /**
   * Columns with their types; `NULL` for a column with no value in this file (it takes other files' type);
   * `mixed` lists the scalar types a JSON column held before it became VARCHAR.
   */
  readonly columns: { name: string; type: string; mixed?: string[] }[];
  /** Rows the reader skipped (`ignore_errors` in the table's options), with the first lines and reasons. */
  readonly skipped?: { rows: number; lines: { line: number; message: string }[] };
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

/** How a text file is read: its delimiter (from the header line) and its character encoding. */
interface TextDialect {
  delim: string;
  encoding: 'utf-8' | 'utf-16' | 'latin-1';
}

/**
 * Looks at the start of a text file: a UTF-16 byte-order mark means UTF-16; for CSV the delimiter is the
 * one of `,` `;` `|` tab that the header line has most of (`,` when it has none). Never guessed from
 * the data rows, so a file whose dialect changes midway is refused instead of silently misread.
 */
async function detectDialect(file: string, kind: FileKind): Promise<TextDialect> {
  const fallback: TextDialect = { delim: kind.format === 'tsv' ? '\t' : ',', encoding: 'utf-8' };
  if (kind.compression) return fallback;
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(65_536);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const buf = head.subarray(0, bytesRead);
    if ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff)) return { ...fallback, encoding: 'utf-16' };
    if (kind.format !== 'csv') return fallback;
    const line = buf.toString('latin1').replace(/^\xef\xbb\xbf/, '').split(/\r?\n/)[0] ?? '';
    let best = ',';
    let count = 0;
    for (const d of [',', ';', '|', '\t']) {
      const n = line.split(d).length - 1;
      if (n > count) {
        best = d;
        count = n;
      }
    }
    return { ...fallback, delim: best };
  } finally {
    await fh.close();
  }
}

/**
 * The reader for one file. CSV and TSV are read strictly: the delimiter from the header line, `"` quotes,
 * every row with the header's number of fields (a ragged row or an unterminated quote is an error, not
 * a silently reshaped table), lines up to DuckDB's 2 MB (a file with longer lines is read again with up to
 * 64 MB: the larger buffers make every read ~40 % slower, so only such a file pays for them). Types are sniffed
 * from every row, not a sample: DuckDB's scanner converts a value that does not fit the sniffed type leniently (`1.5` in a column sniffed as
 * BIGINT is read as 2, `2024-01-01 10:30:00` in a DATE column as the date), so a type chosen from the first
 * rows would silently change values further down.
 */
function strictReaderSql(kind: FileKind, file: string, dialect: TextDialect, fullSample: boolean, o: CsvOptions = {}, rejects: string | null = null): string {
  if (kind.format !== 'csv' && kind.format !== 'tsv') return fileReaderSql(kind, file, fullSample);
  // The table's _table.yaml, where it says otherwise; null_padding implies a lenient row shape unless strict_mode is set.
  const enc = o.encoding ?? dialect.encoding;
  const encoding = enc === 'utf-8' ? '' : `, encoding=${quoteLiteral(enc)}`;
  const quote = o.quote ?? '"';
  const escape = o.escape ?? quote;
  const strict = o.strict_mode ?? !o.null_padding;
  return (
    `read_csv(${quoteLiteral(file)}, header=${o.header ?? true}, auto_detect=true, delim=${quoteLiteral(o.delim ?? dialect.delim)}, quote=${quoteLiteral(quote)}, ` +
    `escape=${quoteLiteral(escape)}, strict_mode=${strict}, null_padding=${o.null_padding ?? false}${o.max_line_size ? `, max_line_size=${o.max_line_size}` : ''}${encoding}, sample_size=-1${csvOptionSql(o, rejects)})`
  );
}

const ENCODING_ERROR = /unicode|utf-?8|encoding/i;

const LINE_TOO_LONG = /Maximum line size of \d+ bytes exceeded/i;
/** The longest line a CSV file may have unless its _table.yaml sets `max_line_size`. */
const LONG_LINE_BYTES = 64 * 1024 * 1024;

const SNIFF_ERROR = /Could not convert|Conversion Error|Could not parse|sniff|Type mismatch|cast/i;

/**
 * Reads one data file into the table `target` (a qualified, quoted name) of `conn`. DuckDB sees it through a symlink with a plain name in
 * `linkDir`, so characters DuckDB would treat as a glob (`*`, `?`, `[`) or quotes in the real name
 * do not matter. CSV/JSON types are sniffed from a sample first; if a value past the sample does
 * not fit, the file is read again with the whole file as the sample (never a silent NULL).
 */
export async function readFileIntoTable(
  conn: DuckDBConnection,
  options: { absPath: string; relPath: string; kind: FileKind; target: string; linkDir: string; index: number; csv?: CsvOptions },
): Promise<ReadFileResult> {
  const target = options.target;
  const textFormat = options.kind.format !== 'parquet' && options.kind.format !== 'arrow';
  if (options.kind.format === 'json' && !options.kind.compression) await checkJsonArrayComplete(options.absPath, options.relPath);
  const size = (await open(options.absPath, 'r').then(async (fh) => { try { return (await fh.stat()).size; } finally { await fh.close(); } }));
  if (size === 0) throw new FileReadError(options.relPath, 'the file is empty (0 bytes)');
  if (options.kind.format === 'arrow') {
    // Read by apache-arrow from the file itself: DuckDB never sees its name.
    try {
      await conn.run(`DROP TABLE IF EXISTS ${target}`);
      await loadArrow(conn, await readFile(options.absPath), target);
    } catch (err) {
      throw new FileReadError(options.relPath, `not a readable Arrow IPC file (stream or file form): ${(err as Error).message.split('\n')[0]}`);
    }
    return await describeRead(conn, target, options.relPath, false);
  }
  const link = path.join(options.linkDir, `f${options.index}${options.kind.extension}`);
  await symlink(options.absPath, link);
  const dialect = textFormat ? await detectDialect(options.absPath, options.kind) : { delim: ',', encoding: 'utf-8' as const };
  let csv = options.kind.format === 'csv' || options.kind.format === 'tsv' ? (options.csv ?? {}) : {};
  const rejects = csv.ignore_errors ? `fd_rejects_${options.index}` : null;
  const attempt = async (d: TextDialect, fullSample: boolean) => {
    try {
      await conn.run(`CREATE OR REPLACE TABLE ${target} AS SELECT * FROM ${strictReaderSql(options.kind, link, d, fullSample, csv, rejects)}`);
    } catch (err) {
      if (csv.max_line_size !== undefined || !LINE_TOO_LONG.test((err as Error).message)) throw err;
      csv = { ...csv, max_line_size: LONG_LINE_BYTES };
      await attempt(d, fullSample);
    }
  };
  try {
    try {
      await attempt(dialect, false);
    } catch (err) {
      const message = (err as Error).message;
      if (!textFormat) throw err;
      if (ENCODING_ERROR.test(message) && dialect.encoding === 'utf-8' && (options.kind.format === 'csv' || options.kind.format === 'tsv')) {
        // Not UTF-8: read as Latin-1, where every byte is a character (nothing is dropped or replaced).
        await attempt({ ...dialect, encoding: 'latin-1' }, false);
      } else if (SNIFF_ERROR.test(message)) {
        await attempt(dialect, true);
      } else {
        throw err;
      }
    }
  } catch (err) {
    if (options.kind.format !== 'csv' && options.kind.format !== 'tsv') throw new FileReadError(options.relPath, cleanReason((err as Error).message, link, options.relPath));
    // Which rows break the file's shape, with their line numbers: what DuckDB's own message does not say.
    const hint = optionsHint(options.relPath, csv);
    const bad = csv.ignore_errors ? null : await diagnoseRows(conn, link, options.kind, dialect, csv, options.index).catch(() => null);
    if (bad?.rows) {
      const first = bad.lines.map((l) => `line ${l.line}: ${l.message}`).join('; ');
      throw new FileReadError(options.relPath, `${bad.rows} row(s) do not fit the file's columns (${first}${bad.rows > bad.lines.length ? '; …' : ''}); the file is not read until it is fixed. ${hint}`);
    }
    const reason = cleanReason((err as Error).message.split('\n').slice(0, 2).join('\n'), link, options.relPath);
    throw new FileReadError(options.relPath, `${reason}. ${hint}`);
  } finally {
    await rm(link, { force: true });
  }
  const skipped = rejects ? await skippedRows(conn, rejects) : null;
  const read = await describeRead(conn, target, options.relPath, textFormat, options.kind.format === 'json' || options.kind.format === 'ndjson');
  return skipped?.rows ? { ...read, skipped } : read;
}

/** What a user can set to read a CSV file DuckDB refused, and where. */
function optionsHint(relPath: string, csv: CsvOptions): string {
  const parts = relPath.split('/');
  const where = parts.length > 1 ? `${parts[0]}/_table.yaml` : `a _table.yaml beside it (move ${relPath} into a folder ${parts[0]!.replace(/\..*$/, '')}/ first)`;
  const set = csv.ignore_errors ? 'null_padding: true, delim, quote, skip or comment' : 'ignore_errors: true (skip such rows; they are listed here), null_padding: true (pad short rows with NULL), delim, quote, skip or comment';
  return `To read it anyway, set ${set} in ${where}`;
}

/** Reads the file again skipping rows that do not fit, only to name them (line and reason); nothing is kept. */
async function diagnoseRows(conn: DuckDBConnection, link: string, kind: FileKind, dialect: TextDialect, csv: CsvOptions, index: number): Promise<{ rows: number; lines: { line: number; message: string }[] }> {
  const rejects = `fd_diag_${index}`;
  await conn.run(`CREATE OR REPLACE TEMP TABLE fd_diag AS SELECT count(*) AS n FROM ${strictReaderSql(kind, link, dialect, false, { ...csv, ignore_errors: true }, rejects)}`);
  try {
    return await skippedRows(conn, rejects);
  } finally {
    await conn.run('DROP TABLE IF EXISTS temp.fd_diag').catch(() => undefined);
  }
}

/** The rows and columns of a file just read into `target`. */
async function describeRead(conn: DuckDBConnection, target: string, relPath: string, textFormat: boolean, json = false): Promise<ReadFileResult> {
  const described = await conn.runAndReadAll(`DESCRIBE ${target}`);
  const columns: { name: string; type: string; mixed?: string[] }[] = described.getRowObjectsJS().map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
  if (json) await widenMixedScalars(conn, target, columns);
  if (columns.length === 0) throw new FileReadError(relPath, 'the file has no columns');
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

/**
 * A JSON column whose values are scalars of several types (mostly strings, a few numbers) comes out of DuckDB's
 * reader as type JSON: every value quoted, `= 'text'` failing. Such a column becomes VARCHAR with each value as
 * its text (strings unquoted, numbers and booleans as written), the rule for mixed types across files; the
 * types it held are kept in `mixed` for the table's conflicts. A column that also holds objects or arrays stays JSON.
 */
async function widenMixedScalars(conn: DuckDBConnection, target: string, columns: { name: string; type: string; mixed?: string[] }[]): Promise<void> {
  for (const c of columns) {
    if (c.type !== 'JSON') continue;
    const col = quoteIdent(c.name);
    const found = await conn.runAndReadAll(`SELECT list(DISTINCT json_type(${col}) ORDER BY json_type(${col})) FILTER (WHERE ${col} IS NOT NULL) FROM ${target}`);
    const types = ((found.getRowsJS()[0]?.[0] as string[] | null) ?? []).filter((t) => t !== 'NULL');
    if (types.length === 0 || types.some((t) => t === 'OBJECT' || t === 'ARRAY')) continue;
    await conn.run(
      `ALTER TABLE ${target} ALTER COLUMN ${col} SET DATA TYPE VARCHAR USING CASE json_type(${col}) WHEN 'VARCHAR' THEN ${col}->>'$' WHEN 'NULL' THEN NULL ELSE ${col}::VARCHAR END`,
    );
    c.type = 'VARCHAR';
    if (types.length > 1) c.mixed = types;
  }
}

/**
 * Reads one data file into a new DuckDB database file `out` holding one table, `part` (the file's part, in
 * DuckDB's own compressed storage, so a replica attaches it as it is). This is what a reader process does for
 * the cacher.
 */
export async function readFileToPart(
  conn: DuckDBConnection,
  options: { absPath: string; relPath: string; kind: FileKind; linkDir: string; index: number; out: string; csv?: CsvOptions },
): Promise<ReadFileResult> {
  const alias = `out_${options.index}`;
  await rm(options.out, { force: true });
  await conn.run(`ATTACH ${quoteLiteral(options.out)} AS ${quoteIdent(alias)}`);
  let ok = false;
  try {
    const result = await readFileIntoTable(conn, { ...options, target: `${quoteIdent(alias)}.main.part` });
    ok = true;
    return result;
  } finally {
    await conn.run(`DETACH ${quoteIdent(alias)}`); // checkpoints: the file is complete and self-contained
    if (!ok) await rm(options.out, { force: true });
  }
}
