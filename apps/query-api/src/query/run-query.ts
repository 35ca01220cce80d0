import { StatementType, type DuckDBConnection, type DuckDBPreparedStatement, type DuckDBResult } from '@duckdb/node-api';
import { AppError, cleanDuckDBMessage, counter, histogram } from '@flashduck/core';

export { cleanDuckDBMessage };
import { arrowToParquet, encodeArrowStream, jsonValueConverter } from '@flashduck/core/duckdb';
import os from 'node:os';
import path from 'node:path';
import type { Generation } from '../snapshots/generation.js';

export type ResultFormat = 'json' | 'csv' | 'ndjson' | 'arrow' | 'parquet';
export const RESULT_FORMATS: readonly ResultFormat[] = ['json', 'csv', 'ndjson', 'arrow', 'parquet'];

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

/** Parses `sql` on a locked connection and refuses anything but exactly one read statement. */
async function prepareReadOnly(conn: DuckDBConnection, sql: string): Promise<DuckDBPreparedStatement> {
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
    const name = statementName(prepared.statementType);
    prepared.destroySync();
    throw new AppError('refused_statement', `${name} statements are not allowed: FlashDuck answers read-only queries (SELECT, WITH, DESCRIBE, SUMMARIZE, EXPLAIN)`);
  }
  return prepared;
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

class TooLarge extends AppError {
  constructor(limit: number) {
    super('too_large', `the result is larger than ${limit} bytes; add a LIMIT, select fewer columns, or use format=arrow`);
  }
}

/** Reads rows chunk by chunk into the output format, stopping at the row cap. */
async function collect(
  result: DuckDBResult,
  format: Exclude<ResultFormat, 'arrow'>,
  limits: QueryLimits,
): Promise<{ body: string; rowCount: number; truncated: boolean; columns: { name: string; type: string }[] }> {
  const names = result.deduplicatedColumnNames();
  const columns = names.map((name, i) => ({ name, type: result.columnType(i).toString() }));
  const parts: string[] = [];
  let bytes = 0;
  let rowCount = 0;
  let truncated = false;
  const push = (s: string) => {
    bytes += s.length;
    if (bytes > limits.maxResultBytes) throw new TooLarge(limits.maxResultBytes);
    parts.push(s);
  };
  if (format === 'csv') push(`${names.map(csvCell).join(',')}\n`);
  outer: for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const rows = chunk.convertRows(jsonValueConverter);
    for (const row of rows) {
      if (rowCount === limits.maxRows) {
        truncated = true;
        break outer;
      }
      rowCount += 1;
      if (format === 'csv') {
        push(`${row.map(csvCell).join(',')}\n`);
      } else {
        const obj: Record<string, unknown> = {};
        for (let i = 0; i < names.length; i++) obj[names[i]!] = row[i] ?? null;
        push(JSON.stringify(obj));
      }
    }
  }
  if (!truncated && rowCount === limits.maxRows) {
    const more = await result.fetchChunk();
    truncated = !!more && more.rowCount > 0;
  }
  const body = format === 'json' ? `[${parts.join(',')}]` : format === 'ndjson' ? parts.map((p) => `${p}\n`).join('') : parts.join('');
  return { body, rowCount, truncated, columns };
}

/**
 * Runs one read-only statement on a pinned generation: refused unless it is exactly one SELECT-like
 * statement; cut by DuckDB's interrupt at the deadline (a timer alone would leave it running); at
 * most `maxRows` rows (then `truncated`) and `maxResultBytes` bytes (then 413).
 */
export async function runQuery(
  generation: Generation,
  sql: string,
  format: ResultFormat,
  limits: QueryLimits,
  /** The versions of the tables the statement may read (see versionsRead), or a promise of them. */
  tablesRead: Record<string, number> | Promise<Record<string, number>>,
): Promise<QueryOutput> {
  const started = performance.now();
  const deadlineAt = Date.now() + limits.timeoutMs;
  let outcome = 'ok';
  const { conn, release } = await generation.acquire(limits.maxQueued, deadlineAt);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.interrupt();
  }, Math.max(1, deadlineAt - Date.now()));
  try {
    const prepared = await prepareReadOnly(conn, sql);
    const tables = await tablesRead;
    try {
      const result = await prepared.stream();
      if (format === 'arrow' || format === 'parquet') {
        const names = result.deduplicatedColumnNames();
        const types = new Map(names.map((n, i) => [n, result.columnType(i).toString()]));
        const { bytes, rows, truncated } = await encodeArrowStream(result, { maxRows: limits.maxRows });
        if (bytes.byteLength > limits.maxResultBytes) throw new TooLarge(limits.maxResultBytes);
        if (format === 'arrow') return out('application/vnd.apache.arrow.stream', Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), rows, truncated);
        // Parquet is written by a scratch DuckDB that only trusted code touches (the result, never user SQL).
        const parquet = await arrowToParquet(bytes, types, path.join(os.tmpdir(), 'flashduck-results'));
        return out('application/vnd.apache.parquet', parquet, rows, truncated);
      }
      const r = await collect(result, format, limits);
      if (format === 'json') {
        const elapsedMs = Math.round((performance.now() - started) * 1000) / 1000;
        const body = `{"columns":${JSON.stringify(r.columns)},"rows":${r.body},"rowCount":${r.rowCount},"truncated":${r.truncated},"tables":${JSON.stringify(tables)},"elapsedMs":${elapsedMs}}`;
        return { contentType: 'application/json; charset=utf-8', body: Buffer.from(body), rowCount: r.rowCount, truncated: r.truncated, tables, elapsedMs };
      }
      return out(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8', Buffer.from(r.body), r.rowCount, r.truncated);
    } finally {
      prepared.destroySync();
    }

    function out(contentType: string, body: Buffer, rowCount: number, truncated: boolean): QueryOutput {
      return { contentType, body, rowCount, truncated, tables, elapsedMs: Math.round((performance.now() - started) * 1000) / 1000 };
    }
  } catch (err) {
    if (timedOut || (err instanceof Error && /INTERRUPT/i.test(err.message))) {
      outcome = 'timeout';
      throw new AppError('timeout', `the query ran past its deadline of ${limits.timeoutMs} ms and was cancelled`);
    }
    if (err instanceof AppError) {
      outcome = err.code;
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
    release();
    queriesTotal.inc({ format, outcome });
    querySeconds.observe({ format }, (performance.now() - started) / 1000);
  }
}
