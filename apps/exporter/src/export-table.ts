import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  TableMeta,
  decode,
  quoteLiteral,
  recordExportWritten,
  replaceDurably,
  writeFileDurably,
  type Keys,
  type Logger,
  type RedisClient,
} from '@flashduck/core';
import { PartCache, attachParts, closeDuckDB, openDuckDB, partsSelectSql } from '@flashduck/core/duckdb';
import type { Compression } from './config.js';

const TEMP_MARK = '.tmp-';

/** What `<table>.manifest.json` says about an export. */
export interface ExportManifest {
  readonly table: string;
  readonly version: number;
  readonly rows: number;
  readonly bytes: number;
  readonly columns: { name: string; type: string }[];
  readonly files: { path: string; size: number; modifiedAt: string; rows: number }[];
  readonly compression: Compression;
  readonly rowGroupSize: number;
  readonly snapshotUpdatedAt: string;
  readonly writtenAt: string;
}

export interface ParquetOptions {
  readonly compression: Compression;
  readonly rowGroupSize: number;
  readonly workDir: string;
  readonly threads?: number | undefined;
  readonly memoryLimitMb?: number | undefined;
}

/** A hidden temp name next to `file` (readers listing `*.parquet` never see it). */
function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}${TEMP_MARK}${randomBytes(4).toString('hex')}`);
}

/** Removes temp files a crashed export of `file` left behind. */
export async function removeStaleTemps(file: string): Promise<void> {
  const prefix = `.${path.basename(file)}${TEMP_MARK}`;
  let entries: string[] = [];
  try {
    entries = await readdir(path.dirname(file));
  } catch {
    return;
  }
  for (const e of entries) if (e.startsWith(prefix)) await rm(path.join(path.dirname(file), e), { force: true });
}

/** Writes `content` to `file` atomically: temp in the same folder, fsync, rename, fsync the folder. */
export async function writeAtomically(file: string, content: string | Uint8Array): Promise<void> {
  await writeFileDurably(file, tempNameFor(file), content);
}

/** The table's current snapshot metadata, or null when it has none (dropped, or not built yet). */
export async function readMeta(redis: RedisClient, keys: Keys, table: string): Promise<TableMeta | null> {
  const raw = await redis.hget(keys.tableMeta(table), 'json');
  if (!raw) return null;
  const d = decode(TableMeta, raw);
  if (!d.ok) throw new Error(`the metadata of table ${table} is unreadable: ${d.error}`);
  return d.value;
}

/**
 * Writes one table version as a Parquet file with DuckDB's writer, reading its parts from a local part cache
 * (`<workDir>/parts/<table>`: an export fetches only the parts the last one did not have): to a hidden temp
 * file beside `out`, fsynced, then renamed over `out` (so readers see the old file or the new one, never a
 * part), and the folder fsynced. `mayReplace` is asked right before the rename (the export lease).
 */
export async function writeParquet(
  redis: RedisClient,
  keys: Keys,
  meta: TableMeta,
  out: string,
  options: ParquetOptions,
  mayReplace: () => Promise<boolean> = async () => true,
): Promise<{ rows: number; bytes: number; fetchMs: number; copyMs: number; fetchedBytes: number }> {
  if (meta.parts.length === 0 || meta.columns.length === 0) throw new Error(`table ${meta.table} has no readable rows to export (see its errors)`);
  const work = path.join(options.workDir, `${meta.table}-v${meta.version}-${randomBytes(3).toString('hex')}`);
  await mkdir(work, { recursive: true });
  await mkdir(path.dirname(out), { recursive: true });
  const cache = new PartCache({ redis, keys, dir: path.join(options.workDir, 'parts', meta.table), duckdb: { threads: options.threads } });
  const tmp = tempNameFor(out);
  const db = await openDuckDB({ threads: options.threads, memoryLimitMb: options.memoryLimitMb, tempDir: path.join(work, 'spill') });
  try {
    const t0 = Date.now();
    const files = new Map<string, string>();
    (await cache.ensureAll(meta.parts)).forEach((got, i) => files.set(meta.parts[i]!.id, got.file));
    await attachParts([db.conn], files);
    const select = partsSelectSql(meta.parts, meta.columns)!;
    const t1 = Date.now();
    const codec = options.compression === 'uncompressed' ? 'uncompressed' : options.compression;
    const r = await db.conn.runAndReadAll(
      `COPY (${select}) TO ${quoteLiteral(tmp)} (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE ${options.rowGroupSize})`,
    );
    const rows = Number(r.getRowsJS()[0]?.[0] ?? 0);
    const t2 = Date.now();
    if (!(await mayReplace())) throw new Error(`lost the export lease of table ${meta.table}; another exporter writes it`);
    await replaceDurably(tmp, out);
    return { rows, bytes: (await stat(out)).size, fetchMs: t1 - t0, copyMs: t2 - t1, fetchedBytes: cache.fetchedBytes };
  } finally {
    closeDuckDB(db);
    await rm(tmp, { force: true });
    await rm(work, { recursive: true, force: true });
    await cache.retain(new Set(meta.parts.map((p) => p.id))).catch(() => undefined);
  }
}

/** Removes the local part cache of a dropped table. */
export async function removePartCache(workDir: string, table: string): Promise<void> {
  await rm(path.join(workDir, 'parts', table), { recursive: true, force: true });
}

export interface ExportResult {
  readonly table: string;
  readonly version: number;
  readonly rows: number;
  readonly bytes: number;
  readonly ms: number;
  readonly fetchMs: number;
  readonly copyMs: number;
  /** Bytes of parts fetched from Redis for this export (parts the previous export of the table did not have). */
  readonly fetchedBytes: number;
  readonly path: string;
}

/**
 * Exports a table's current snapshot to `<exportDir>/<table>.parquet`, then writes
 * `<table>.manifest.json` (also atomically, after the Parquet file), and records the export in Redis.
 */
export async function exportTable(
  deps: { redis: RedisClient; keys: Keys; log: Logger; exportDir: string; options: ParquetOptions },
  meta: TableMeta,
  mayReplace?: () => Promise<boolean>,
): Promise<ExportResult> {
  const started = Date.now();
  const out = path.join(deps.exportDir, `${meta.table}.parquet`);
  await removeStaleTemps(out);
  const { rows, bytes, fetchMs, copyMs, fetchedBytes } = await writeParquet(deps.redis, deps.keys, meta, out, deps.options, mayReplace);
  const manifest: ExportManifest = {
    table: meta.table,
    version: meta.version,
    rows,
    bytes,
    columns: meta.columns.map((c) => ({ name: c.name, type: c.type })),
    files: meta.files.map((f) => ({ path: f.path, size: f.size, modifiedAt: new Date(f.mtimeMs).toISOString(), rows: f.rows })),
    compression: deps.options.compression,
    rowGroupSize: deps.options.rowGroupSize,
    snapshotUpdatedAt: new Date(meta.updatedAt).toISOString(),
    writtenAt: new Date().toISOString(),
  };
  const manifestFile = path.join(deps.exportDir, `${meta.table}.manifest.json`);
  await removeStaleTemps(manifestFile);
  await writeAtomically(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
  const ms = Date.now() - started;
  await recordExportWritten(deps.redis, deps.keys, meta.table, { version: meta.version, rows, bytes, at: Date.now(), ms, path: out });
  return { table: meta.table, version: meta.version, rows, bytes, ms, fetchMs, copyMs, fetchedBytes, path: out };
}

/** Removes a dropped table's export and manifest. */
export async function removeExport(redis: RedisClient, keys: Keys, exportDir: string, table: string): Promise<boolean> {
  const out = path.join(exportDir, `${table}.parquet`);
  let existed = true;
  try {
    await stat(out);
  } catch {
    existed = false;
  }
  await rm(path.join(exportDir, `${table}.manifest.json`), { force: true });
  await rm(out, { force: true });
  await removeStaleTemps(out);
  await redis.del(keys.tableExported(table));
  return existed;
}
