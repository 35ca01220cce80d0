import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection, type DuckDBResult } from '@duckdb/node-api';
import { processDirName, removeDirsOfDeadProcesses } from '../processes.js';
import { quoteIdent, quoteLiteral } from '../sql.js';
import type { FileKind } from '../table-names.js';

const require = createRequire(import.meta.url);

/** The @duckdb/node-api version: a `duckdb` snapshot is only read by the same storage engine. */
export const DUCKDB_ENGINE_VERSION: string = (require('@duckdb/node-api/package.json') as { version: string }).version;

export interface DuckDBOptions {
  /** Memory limit of the instance in MiB (DuckDB's default is 80% of RAM per instance). */
  readonly memoryLimitMb?: number;
  readonly threads?: number;
  /** Where DuckDB may spill (default: $TMPDIR/flashduck-duckdb): each instance spills in a folder of its own in it. */
  readonly tempDir?: string;
}

/** An open in-memory DuckDB: its instance, a connection, and the folder only it spills to. */
export interface DuckDBHandle {
  readonly instance: DuckDBInstance;
  readonly conn: DuckDBConnection;
  readonly spillDir: string;
}

let instances = 0;
let sweptDefault = false;

/**
 * A new spill folder for one instance under `base`. DuckDB names its spill files the same in every instance
 * (duckdb_temp_storage_S96K-0.tmp) and, when an instance closes, deletes every such file in its folder: two
 * instances sharing a folder (two generations of a replica, a build beside a merge, two replicas on one host)
 * fail each other's spilling queries ("Could not read enough bytes from file"). In the default base, shared by
 * every process, folders left by processes that died are removed on the first open; a base a caller gives is its
 * own scratch space, removed by the caller.
 */
function spillDirIn(base: string | undefined): string {
  if (base === undefined) {
    base = path.join(os.tmpdir(), 'flashduck-duckdb');
    if (!sweptDefault) removeDirsOfDeadProcesses(base);
    sweptDefault = true;
  }
  return path.join(base, processDirName(instances++));
}

/**
 * Opens an in-memory DuckDB with FlashDuck's base settings: UTC, no extension downloads
 * (only parquet, json and icu exist offline; autoinstall would hang on a network timeout).
 */
export async function openDuckDB(options: DuckDBOptions = {}): Promise<DuckDBHandle> {
  const config: Record<string, string> = {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'true',
  };
  if (options.memoryLimitMb) config.memory_limit = `${options.memoryLimitMb}MB`;
  if (options.threads) config.threads = String(options.threads);
  // Spill to the temp folder, not to ".tmp" under the working directory (read-only in containers). DuckDB makes
  // the folder on the first spill only.
  const spillDir = spillDirIn(options.tempDir);
  config.temp_directory = spillDir;
  const instance = await DuckDBInstance.create(':memory:', config);
  const conn = await instance.connect();
  await conn.run(`SET TimeZone='UTC'`);
  return { instance, conn, spillDir };
}

/** Closes a connection and its instance (ignoring errors from an already closed one) and removes its spill folder. */
export function closeDuckDB(handle: DuckDBHandle): void {
  try {
    handle.conn.closeSync();
  } catch {
    /* already closed */
  }
  try {
    handle.instance.closeSync();
  } catch {
    /* already closed */
  }
  rmSync(handle.spillDir, { recursive: true, force: true });
}

/**
 * The DuckDB table function that reads a data file: CSV/TSV with header and type sniffing, JSON as
 * array or NDJSON, Parquet. `fullSample` sniffs types from the whole file instead of a sample.
 */
export function fileReaderSql(kind: FileKind, file: string, fullSample = false): string {
  const f = quoteLiteral(file);
  const sample = fullSample ? ', sample_size=-1' : '';
  switch (kind.format) {
    case 'csv':
      return `read_csv(${f}, header=true, auto_detect=true${sample})`;
    case 'tsv':
      return `read_csv(${f}, header=true, auto_detect=true, delim='\\t'${sample})`;
    case 'json':
      return `read_json(${f}, format='auto'${sample})`;
    case 'ndjson':
      return `read_json(${f}, format='newline_delimited'${sample})`;
    case 'parquet':
      return `read_parquet(${f})`;
    case 'arrow':
      throw new Error('Arrow IPC files are read with loadArrow, not through SQL');
  }
}

/**
 * Writes a query result to a Parquet file (zstd) in `workDir` and returns its path (the caller deletes it). The
 * rows go into a scratch DuckDB chunk by chunk with the appender, values exactly as DuckDB holds them (never
 * through JSON or Arrow), and DuckDB's own writer makes the file; the scratch instance spills to disk, so
 * memory stays bounded. HUGEINT and UHUGEINT are written as text: Parquet has no 128-bit integer, and DuckDB
 * would write a lossy DOUBLE.
 */
export async function resultToParquetFile(result: DuckDBResult, workDir: string): Promise<{ file: string; rows: number }> {
  const { mkdir } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  await mkdir(workDir, { recursive: true });
  const file = path.join(workDir, `result-${randomBytes(6).toString('hex')}.parquet`);
  const db = await openDuckDB({ threads: 1 });
  try {
    const names = result.deduplicatedColumnNames();
    const types = result.columnTypes();
    await db.conn.run(`CREATE TABLE result (${names.map((n, i) => `${quoteIdent(n)} ${types[i]!.toString()}`).join(', ')})`);
    const appender = await db.conn.createAppender('result');
    let rows = 0;
    try {
      for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
        appender.appendDataChunk(chunk);
        rows += chunk.rowCount;
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    const select = names.map((n, i) => (/^U?HUGEINT$/.test(types[i]!.toString()) ? `${quoteIdent(n)}::VARCHAR AS ${quoteIdent(n)}` : quoteIdent(n))).join(', ');
    await db.conn.run(`COPY (SELECT ${select} FROM result) TO ${quoteLiteral(file)} (FORMAT parquet, COMPRESSION zstd)`);
    return { file, rows };
  } finally {
    closeDuckDB(db);
  }
}

