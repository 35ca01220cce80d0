import { StatementType, type DuckDBConnection, type DuckDBPreparedStatement, type DuckDBResult, type DuckDBType } from '@duckdb/node-api';
import { AppError, cleanDuckDBMessage, counter, histogram } from '@flashduck/core';

export { cleanDuckDBMessage };
import { arrowStreamPieces, jsonValueConverter, resultToParquetFile } from '@flashduck/core/duckdb';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Generation } from '../snapshots/generation.js';

export type ResultFormat = 'json' | 'csv' | 'ndjson' | 'arrow' | 'parquet';
export const RESULT_FORMATS: readonly ResultFormat[] = ['json', 'csv', 'ndjson', 'arrow', 'parquet'];
/** What a query request may carry (a misspelled field is an error, not silently ignored); GET also `token`. */
export const QUERY_FIELDS: ReadonlySet<string> = new Set(['sql', 'format', 'after', 'versions', 'asOf']);
export const QUERY_PARAMS_GET: ReadonlySet<string> = new Set([...QUERY_FIELDS, 'token']);
/** Formats meant for files: complete results, streamed, no row cap. */
export type StreamFormat = Exclude<ResultFormat, 'json'>;
export const CONTENT_TYPES: Record<ResultFormat, string> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
  arrow: 'application/vnd.apache.arrow.stream',
  parquet: 'application/vnd.apache.parquet',
};

const queriesTotal = counter('flashduck_query_requests_total', 'Queries by outcome', ['format', 'outcome']);
const querySeconds = histogram('flashduck_query_duration_seconds', 'Query latency (planning to last byte)', ['format'], [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);

/** Statement types a user may run: plain reads. DESCRIBE, SUMMARIZE, SHOW and PRAGMA table_info plan as SELECT. */
const ALLOWED = new Set<number>([StatementType.SELECT, StatementType.EXPLAIN]);

export interface QueryLimits {
  readonly timeoutMs: number;
  readonly maxRows: number;
  readonly maxResultBytes: number;
  readonly maxQueued: number;
}

export interface QueryOutput {
  readonly contentType: string;
  readonly body: Buffer;
  readonly rowCount: number;
  readonly truncated: boolean;
  /** Tables the query read, with the version it saw. */
  readonly tables: Record<string, number>;
  readonly elapsedMs: number;
}

function statementName(type: number): string {
  return (StatementType as unknown as Record<number, string>)[type] ?? String(type);
}

const READ_ONLY_HINT = 'FlashDuck answers read-only queries (SELECT, WITH, FROM, DESCRIBE, SUMMARIZE, SHOW, EXPLAIN); change data with POST /v1/tables/<t>/upsert or /delete, or in the files';

/** Statements that change something: refused by name, even when DuckDB fails to bind them first. */
const WRITE_KEYWORDS = new Set([
  'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'TRUNCATE', 'CREATE', 'DROP', 'ALTER', 'COPY', 'ATTACH', 'DETACH', 'INSTALL', 'LOAD',
  'SET', 'RESET', 'CALL', 'EXPORT', 'IMPORT', 'VACUUM', 'CHECKPOINT', 'USE', 'BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'ABORT', 'COMMENT', 'UPDATE_EXTENSIONS',
]);

/** System functions that show the server's internal files and settings rather than data. */
const INTERNAL_FUNCTIONS = /\b(duckdb_databases|pragma_database_list|duckdb_settings|current_setting|duckdb_temporary_files|duckdb_extensions|duckdb_secrets|which_secret|duckdb_log|duckdb_logs|pragma_storage_info|duckdb_memory|duckdb_external_file_cache|duckdb_prepared_statements)\s*\(/i;
const INTERNAL_TABLES = /\b(from|join)\s+(pragma_database_list|duckdb_databases|duckdb_settings|duckdb_temporary_files|duckdb_extensions|duckdb_secrets)\b/i;

/** The first word of a statement, past comments and opening parentheses (upper case; '' when none). */
export function leadingKeyword(sql: string): string {
  const rest = sql.replace(/^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/|\()*/, '');
  return /^[A-Za-z_]+/.exec(rest)?.[0].toUpperCase() ?? '';
}

/** The client cancelled the statement (PostgreSQL CancelRequest). */
export class QueryCancelled extends Error {
  constructor() {
    super('canceling statement due to user request');
  }
}

/** Parameter values of a statement (`$1`, `$2`, …): text DuckDB casts to each parameter's type, bytes, or NULL. */
export type ParameterValue = string | Uint8Array | null;

export interface StatementOptions {
  /** Values for the statement's parameters. */
  readonly bind?: readonly ParameterValue[];
  /** Interrupts the statement inside DuckDB when aborted. */
  readonly signal?: AbortSignal;
}

function bindParameters(prepared: DuckDBPreparedStatement, values: readonly ParameterValue[]): void {
  if (values.length !== prepared.parameterCount) {
    throw new AppError('bad_sql', `the statement has ${prepared.parameterCount} parameters, ${values.length} values were bound`);
  }
  values.forEach((v, i) => {
    if (v === null) prepared.bindNull(i + 1);
    else if (typeof v === 'string') prepared.bindVarchar(i + 1, v);
    else prepared.bindBlob(i + 1, v);
  });
}

/** What a statement takes and gives, without running it: its parameters' types and its columns. */
export async function describeStatement(
  generation: Generation,
  sql: string,
  limits: { timeoutMs: number; maxQueued: number },
): Promise<{ parameters: DuckDBType[]; columns: { name: string; type: DuckDBType }[] }> {
  const { conn, release } = await generation.acquire(limits.maxQueued, Date.now() + limits.timeoutMs);
  try {
    const prepared = await prepareReadOnly(conn, sql);
    try {
      const parameters = Array.from({ length: prepared.parameterCount }, (_, i) => prepared.parameterType(i + 1));
      const columns = Array.from({ length: prepared.columnCount }, (_, i) => ({ name: prepared.columnName(i), type: prepared.columnType(i) }));
      return { parameters, columns };
    } finally {
      prepared.destroySync();
    }
  } finally {
    release();
  }
}

/** Parses `sql` on a locked connection and refuses anything but exactly one read statement. */
async function prepareReadOnly(conn: DuckDBConnection, sql: string): Promise<DuckDBPreparedStatement> {
  const keyword = leadingKeyword(sql);
  if (keyword === 'PRAGMA' && !/^\s*PRAGMA\s+(table_info|show)\s*\(/i.test(sql.replace(/^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*/, ''))) {
    throw new AppError('refused_statement', `PRAGMA statements other than PRAGMA table_info('<table>') and PRAGMA show('<table>') are not allowed: ${READ_ONLY_HINT}`);
  }
  const internal = INTERNAL_FUNCTIONS.exec(sql)?.[1] ?? INTERNAL_TABLES.exec(sql)?.[2];
  if (internal) {
    throw new AppError('refused_statement', `${internal} is not available: it shows the server's own files and settings, not data (list tables with SHOW TABLES or GET /v1/tables)`);
  }
  let extracted;
  try {
    extracted = await conn.extractStatements(sql);
  } catch (err) {
    throw new AppError('bad_sql', cleanDuckDBMessage(err));
  }
  if (extracted.count !== 1) {
    throw new AppError('refused_statement', `send exactly one statement per query (got ${extracted.count})`);
  }
  let prepared: DuckDBPreparedStatement;
  try {
    prepared = await extracted.prepare(0);
  } catch (err) {
    const message = cleanDuckDBMessage(err);
    if (WRITE_KEYWORDS.has(keyword)) throw new AppError('refused_statement', `${keyword} statements are not allowed: ${READ_ONLY_HINT}`);
    if (/Permission Error|disabled by configuration|read-only mode|configuration has been locked/i.test(message)) {
      throw new AppError('refused_statement', `refused: ${message}`);
    }
    throw new AppError('bad_sql', message);
  }
  if (prepared.statementType === StatementType.EXPLAIN) {
    // EXPLAIN ANALYZE runs the statement it explains: that statement must be a read too.
    const inner = sql.replace(/^\s*EXPLAIN\s+(ANALY[SZ]E\s+)?(\([^)]*\)\s*)?/i, '');
    if (inner !== sql) {
      const checked = await prepareReadOnly(conn, inner);
      checked.destroySync();
    }
  }
  if (!ALLOWED.has(prepared.statementType)) {
    // The statement's own first word where it is one (DuckDB files INSTALL under LOAD, BEGIN under TRANSACTION).
    const name = WRITE_KEYWORDS.has(keyword) ? keyword : statementName(prepared.statementType);
    prepared.destroySync();
    throw new AppError('refused_statement', `${name} statements are not allowed: ${READ_ONLY_HINT}`);
  }
  return prepared;
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

class TooLarge extends AppError {
  constructor(limit: number, variable: string) {
    super('too_large', `the result is larger than ${limit} bytes (${variable}); add a LIMIT or a WHERE, or select fewer columns`);
  }
}

/** Reads rows chunk by chunk into a JSON array, stopping at the row cap. */
async function collect(
  result: DuckDBResult,
  limits: QueryLimits,
): Promise<{ body: string; rowCount: number; truncated: boolean; columns: { name: string; type: string }[] }> {
  const names = result.deduplicatedColumnNames();
  const columns = names.map((name, i) => ({ name, type: result.columnType(i).toString() }));
  const parts: string[] = [];
  let bytes = 0;
  let rowCount = 0;
  let truncated = false;
  outer: for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    for (const row of chunk.convertRows(jsonValueConverter)) {
      if (rowCount === limits.maxRows) {
        truncated = true;
        break outer;
      }
      rowCount += 1;
      const obj: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i++) obj[names[i]!] = row[i] ?? null;
      const s = JSON.stringify(obj);
      bytes += s.length;
      if (bytes > limits.maxResultBytes) throw new TooLarge(limits.maxResultBytes, 'QUERY_MAX_RESULT_BYTES');
      parts.push(s);
    }
  }
  if (!truncated && rowCount === limits.maxRows) {
    const more = await result.fetchChunk();
    truncated = !!more && more.rowCount > 0;
  }
  return { body: `[${parts.join(',')}]`, rowCount, truncated, columns };
}

/**
 * Runs one read-only statement on a pinned generation and hands its result to `use`: refused unless it is
 * exactly one SELECT-like statement; cut by DuckDB's interrupt at the deadline (a timer alone would leave it
 * running, and `use` may check `deadlineAt` between pieces); errors become the API's codes; counted by outcome.
 */
export async function withResult<T>(
  generation: Generation,
  sql: string,
  format: ResultFormat | 'pg',
  limits: { timeoutMs: number; maxQueued: number },
  tablesRead: Record<string, number> | Promise<Record<string, number>>,
  use: (result: DuckDBResult, tables: Record<string, number>, deadlineAt: number) => Promise<T>,
  options: StatementOptions = {},
): Promise<T> {
  const started = performance.now();
  const deadlineAt = Date.now() + limits.timeoutMs;
  let outcome = 'ok';
  const { conn, release } = await generation.acquire(limits.maxQueued, deadlineAt);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.interrupt();
  }, Math.max(1, deadlineAt - Date.now()));
  const cancel = () => conn.interrupt();
  options.signal?.addEventListener('abort', cancel);
  try {
    if (options.signal?.aborted) throw new QueryCancelled();
    const prepared = await prepareReadOnly(conn, sql);
    try {
      if (options.bind) bindParameters(prepared, options.bind);
      const tables = await tablesRead;
      return await use(await prepared.stream(), tables, deadlineAt);
    } finally {
      prepared.destroySync();
    }
  } catch (err) {
    if (options.signal?.aborted && !timedOut) {
      outcome = 'cancelled';
      throw new QueryCancelled();
    }
    if (timedOut || (err instanceof Error && /INTERRUPT/i.test(err.message))) {
      outcome = 'timeout';
      throw new AppError('timeout', `the query ran past its deadline of ${limits.timeoutMs} ms (QUERY_TIMEOUT_MS) and was cancelled`);
    }
    if (err instanceof AppError) {
      outcome = err.code;
      throw err;
    }
    if (err instanceof ClientGone) {
      outcome = 'client_gone';
      throw err;
    }
    const message = cleanDuckDBMessage(err);
    if (/Out of Memory|memory_limit|could not allocate/i.test(message)) {
      outcome = 'too_large';
      throw new AppError('too_large', `the query needs more memory than this server allows (QUERY_MEMORY_LIMIT_MB): ${message}`);
    }
    outcome = 'bad_sql';
    throw new AppError('bad_sql', message);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', cancel);
    release();
    queriesTotal.inc({ format, outcome });
    querySeconds.observe({ format }, (performance.now() - started) / 1000);
  }
}

/**
 * A JSON answer: at most `maxRows` rows (then `truncated`) and `maxResultBytes` bytes (then 413), built whole
 * (a browser's answer, small by design).
 */
export async function runQuery(
  generation: Generation,
  sql: string,
  limits: QueryLimits,
  /** The versions of the tables the statement may read (see versionsRead), or a promise of them. */
  tablesRead: Record<string, number> | Promise<Record<string, number>>,
): Promise<QueryOutput> {
  const started = performance.now();
  return await withResult(generation, sql, 'json', limits, tablesRead, async (result, tables) => {
    const r = await collect(result, limits);
    const elapsedMs = Math.round((performance.now() - started) * 1000) / 1000;
    const body = `{"columns":${JSON.stringify(r.columns)},"rows":${r.body},"rowCount":${r.rowCount},"truncated":${r.truncated},"tables":${JSON.stringify(tables)},"elapsedMs":${elapsedMs}}`;
    return { contentType: CONTENT_TYPES.json, body: Buffer.from(body), rowCount: r.rowCount, truncated: r.truncated, tables, elapsedMs };
  });
}

/** Where a streamed result goes: `write` resolves once the client can take more (rejects with ClientGone). */
export interface ResultSink {
  write(bytes: Uint8Array): Promise<void>;
}

/** The client went away while its result streamed. */
export class ClientGone extends Error {}

export interface StreamLimits {
  readonly timeoutMs: number;
  readonly maxQueued: number;
  /** Bytes a streamed result may have (QUERY_MAX_STREAM_BYTES). */
  readonly maxStreamBytes: number;
}

/** CSV or NDJSON text, one piece per DuckDB chunk. */
async function* textPieces(result: DuckDBResult, format: 'csv' | 'ndjson', stats: { rows: number }): AsyncGenerator<Uint8Array> {
  const names = result.deduplicatedColumnNames();
  if (format === 'csv') yield Buffer.from(`${names.map(csvCell).join(',')}\n`);
  for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
    const lines: string[] = [];
    for (const row of chunk.convertRows(jsonValueConverter)) {
      if (format === 'csv') lines.push(`${row.map(csvCell).join(',')}\n`);
      else {
        const obj: Record<string, unknown> = {};
        for (let i = 0; i < names.length; i++) obj[names[i]!] = row[i] ?? null;
        lines.push(`${JSON.stringify(obj)}\n`);
      }
    }
    stats.rows += chunk.rowCount;
    yield Buffer.from(lines.join(''));
  }
}

/** A Parquet file of the whole result (written first: its footer comes last), then its bytes. */
async function* parquetPieces(result: DuckDBResult, stats: { rows: number }, maxBytes: number): AsyncGenerator<Uint8Array> {
  const { file, rows } = await resultToParquetFile(result, path.join(os.tmpdir(), 'flashduck-results'));
  try {
    stats.rows = rows;
    const { size } = await (await import('node:fs/promises')).stat(file);
    if (size > maxBytes) throw new TooLarge(maxBytes, 'QUERY_MAX_STREAM_BYTES');
    for await (const piece of createReadStream(file, { highWaterMark: 1 << 20 })) yield piece as Buffer;
  } finally {
    await rm(file, { force: true });
  }
}

/**
 * A complete result in a format meant for files, streamed to `sink` piece by piece with no row cap: memory holds
 * one piece (Parquet: the scratch DuckDB that writes the file, which spills). Cut with 413 past
 * `maxStreamBytes`, with 408 past the deadline; the caller decides how a cut after the first bytes is shown.
 */
export async function streamQuery(
  generation: Generation,
  sql: string,
  format: StreamFormat,
  limits: StreamLimits,
  tablesRead: Record<string, number> | Promise<Record<string, number>>,
  sink: ResultSink,
): Promise<{ rowCount: number; bytes: number; tables: Record<string, number>; elapsedMs: number }> {
  const started = performance.now();
  return await withResult(generation, sql, format, limits, tablesRead, async (result, tables, deadlineAt) => {
    const stats = { rows: 0, truncated: false };
    const pieces =
      format === 'arrow' ? arrowStreamPieces(result, {}, stats) : format === 'parquet' ? parquetPieces(result, stats, limits.maxStreamBytes) : textPieces(result, format, stats);
    let bytes = 0;
    for await (const piece of pieces) {
      bytes += piece.byteLength;
      if (bytes > limits.maxStreamBytes) throw new TooLarge(limits.maxStreamBytes, 'QUERY_MAX_STREAM_BYTES');
      await sink.write(piece);
      if (Date.now() > deadlineAt) throw new Error('INTERRUPT: deadline passed while the result streamed');
    }
    return { rowCount: stats.rows, bytes, tables, elapsedMs: Math.round((performance.now() - started) * 1000) / 1000 };
  });
}
