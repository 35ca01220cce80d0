import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  TableMeta,
  decode,
  isPartStored,
  type MergeInput,
  quoteIdent,
  quoteLiteral,
  recordExportWritten,
  replaceDurably,
  writeFileDurably,
  type Keys,
  type Logger,
  type RedisClient,
  type TablePart,
} from '@flashduck/core';
import { PartCache, attachParts, closeDuckDB, openDuckDB, partAlias, partsSelectSql, type DuckDBHandle } from '@flashduck/core/duckdb';
import type { Compression } from './config.js';
import { ParquetFormatError, concatParquet } from './parquet-concat.js';

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
  /** A running exporter's DuckDB instance, kept between exports (else each export opens one of its own). */
  readonly kept?: KeptDuckDB | undefined;
}

/**
 * One DuckDB instance a running exporter keeps between exports. A new instance's first COPY costs ~60 ms more
 * than the same COPY on an instance that has run before (opening it, its first allocations): a third of an
 * export after an append. One export holds it at a time; an export that fails closes it, and the next opens
 * a new one.
 */
export class KeptDuckDB {
  private idle: DuckDBHandle | null = null;

  constructor(private readonly o: { memoryLimitMb?: number | undefined; tempDir: string }) {}

  /** The kept instance (or a new one), set to `threads` threads. */
  async take(threads: number): Promise<DuckDBHandle> {
    const db = this.idle ?? (await openDuckDB({ threads, memoryLimitMb: this.o.memoryLimitMb, tempDir: this.o.tempDir }));
    this.idle = null;
    try {
      await db.conn.run(`SET threads = ${threads}`);
    } catch (err) {
      closeDuckDB(db);
      throw err;
    }
    return db;
  }

  /** Keeps `db` for the next export (with nothing attached), or closes it when one is kept already. */
  give(db: DuckDBHandle): void {
    if (this.idle) closeDuckDB(db);
    else this.idle = db;
  }

  close(): void {
    if (this.idle) closeDuckDB(this.idle);
    this.idle = null;
  }
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

/** Parts of fewer rows than this fraction of a row group are exported together, as one piece. */
const SMALL_PART_OF_ROW_GROUP = 4;
/** Bump when a piece's bytes would differ for the same inputs: older cached pieces are then never reused. */
const PIECE_FORMAT = 1;

/**
 * The pieces of an export: each part of at least a quarter row group alone (in the version's order), then every
 * smaller part together in one piece, so a table of many small files does not become a file of many tiny row groups.
 */
export function planPieces(parts: readonly TablePart[], rowGroupSize: number): TablePart[][] {
  const small = parts.filter((p) => p.rows * SMALL_PART_OF_ROW_GROUP < rowGroupSize);
  const pieces = parts.filter((p) => !small.includes(p)).map((p) => [p]);
  if (small.length) pieces.push(small);
  return pieces;
}

/**
 * How the pieces to write share the cores: `lanes` pieces at a time, each COPY with `threads` DuckDB threads.
 * Pieces of about one row group each run one per core, single-threaded: one row group is encoded by one thread
 * anyway, and DuckDB's idle threads beside it cost nearly as much CPU again (ten 100k-row pieces two at a time
 * took 1.3–1.9 s of CPU with two threads each against 0.9–1.4 s with one, and 1.4x as long). A piece holding most
 * of the rows (a big merged part) gets every core to itself instead.
 */
export function planLanes(pieces: readonly (readonly TablePart[])[], cores: number): { lanes: number; threads: number } {
  const rows = pieces.map((parts) => parts.reduce((n, p) => n + p.rows, 0));
  const total = rows.reduce((a, b) => a + b, 0);
  const largest = Math.max(1, ...rows);
  const lanes = Math.max(1, Math.min(pieces.length, cores, Math.floor(total / largest)));
  return { lanes, threads: Math.max(1, Math.floor(cores / lanes)) };
}

/** The inputs of merged parts (by the merged part's id), from the merge versions the table still retains. */
export type MergeInputs = ReadonlyMap<string, readonly MergeInput[]>;

/** Reads the inputs of every merge among the table's retained versions. */
export async function readMergeInputs(redis: RedisClient, keys: Keys, table: string): Promise<Map<string, readonly MergeInput[]>> {
  const out = new Map<string, readonly MergeInput[]>();
  for (const raw of await redis.hvals(keys.tableVersions(table))) {
    const d = decode(TableMeta, raw);
    if (d.ok && d.value.merged) out.set(d.value.merged.part, d.value.merged.inputs);
  }
  return out;
}

/** How a merged part's piece is made without encoding its rows again: kept pieces joined, and the rest encoded as one. */
export interface Composition {
  /** Kept pieces (files) holding some of the part's rows. */
  readonly kept: string[];
  /** Parts whose rows no kept piece holds: encoded together into one new piece, joined after the kept ones. */
  readonly encode: TablePart[];
}

/**
 * The rows of `part` as kept pieces plus parts to encode: a part with a kept piece of its own is that piece; a merged
 * part none of whose members is excluded holds exactly its inputs' rows, so it is made of theirs (recursively,
 * through merges of merges); any other part is encoded. Null when nothing is kept (encoding the part is cheaper).
 */
export function composePiece(part: TablePart, merges: MergeInputs, kept: (p: TablePart) => string | null): Composition | null {
  const out: Composition = { kept: [], encode: [] };
  const visit = (p: TablePart, depth: number): void => {
    const file = kept(p);
    if (file) {
      out.kept.push(file);
      return;
    }
    const inputs = p.exclude?.length || depth > 64 ? undefined : merges.get(p.id);
    if (!inputs) {
      out.encode.push(p);
      return;
    }
    for (const input of inputs) visit({ ...input, columns: p.columns }, depth + 1);
  };
  visit(part, 0);
  return out.kept.length ? out : null;
}

/** A piece's cache key: everything its Parquet bytes depend on. */
function pieceKey(meta: TableMeta, piece: readonly TablePart[], codec: string, rowGroupSize: number): string {
  const inputs = { f: PIECE_FORMAT, columns: meta.columns.map((c) => [c.name, c.type]), codec, rowGroupSize, parts: piece.map((p) => [p.id, p.exclude ?? [], p.columns.map((c) => [c.name, c.type])]) };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 32);
}

/**
 * Writes one table version as a Parquet file with DuckDB's writer, reading its parts from a local part cache
 * (`<workDir>/parts/<table>`: an export fetches only the parts the last one did not have). Each part (the small
 * ones together) is written as a Parquet piece of its own, several at a time, and kept in
 * `<workDir>/pieces/<table>`; the export joins the pieces' row groups byte for byte under one footer. So the next
 * export after an append encodes only the new part's rows, and a first export uses every core even over many parts
 * of one row group each (a DuckDB scan of a union of those runs one part at a time). The file is written to a
 * hidden temp file beside `out`, fsynced, then renamed over `out` (so readers see the old file or the new one,
 * never a part), and the folder fsynced. `mayReplace` is asked right before the rename (the export lease). When the
 * pieces cannot be joined (a kept piece damaged on disk), they are dropped and the version is written by one COPY.
 */
export async function writeParquet(
  redis: RedisClient,
  keys: Keys,
  meta: TableMeta,
  out: string,
  options: ParquetOptions,
  mayReplace: () => Promise<boolean> = async () => true,
): Promise<WrittenParquet> {
  if (meta.parts.length === 0 || meta.columns.length === 0) throw new Error(`table ${meta.table} has no readable rows to export (see its errors)`);
  const work = path.join(options.workDir, `${meta.table}-v${meta.version}-${randomBytes(3).toString('hex')}`);
  await mkdir(work, { recursive: true });
  await mkdir(path.dirname(out), { recursive: true });
  const cache = new PartCache({ redis, keys, dir: path.join(options.workDir, 'parts', meta.table), duckdb: { threads: options.threads } });
  const pieceDir = path.join(options.workDir, 'pieces', meta.table);
  await mkdir(pieceDir, { recursive: true });
  const codec = options.compression === 'uncompressed' ? 'uncompressed' : options.compression;
  const pieceFile = (parts: readonly TablePart[]) => path.join(pieceDir, `${pieceKey(meta, parts, codec, options.rowGroupSize)}.parquet`);
  const pieces = planPieces(meta.parts, options.rowGroupSize).map((parts) => ({ parts, file: pieceFile(parts) }));
  const tmp = tempNameFor(out);
  const present = new Set(await readdir(pieceDir));
  const isKept = (file: string) => present.has(path.basename(file));
  const toWrite: { parts: readonly TablePart[]; file: string }[] = [];
  // A merged part's piece is the kept pieces of the parts it merged, joined (only rows no kept piece holds are
  // encoded): after a merge the export encodes nothing again and fetches no merged part.
  const composed: { file: string; from: string[] }[] = [];
  let merges: MergeInputs | null = null;
  for (const piece of pieces) {
    if (isKept(piece.file)) continue;
    // Only a merged part can be made of kept pieces, and only when some are kept: an append's or a first export's
    // pieces never read the retained versions.
    const part = piece.parts.length === 1 && piece.parts[0]!.members > 1 && present.size > 0 ? piece.parts[0]! : null;
    merges ??= part ? await readMergeInputs(redis, keys, meta.table) : null;
    const plan = part && merges ? composePiece(part, merges, (p) => (isKept(pieceFile([p])) ? pieceFile([p]) : null)) : null;
    // The parts to encode must still be in Redis (a merge's inputs are collected some time after it).
    if (!plan || !(await allStored(redis, keys, plan.encode))) {
      toWrite.push(piece);
      continue;
    }
    const rest = plan.encode.length ? { parts: plan.encode, file: pieceFile(plan.encode) } : null;
    if (rest && !isKept(rest.file) && !toWrite.some((w) => w.file === rest.file)) toWrite.push(rest);
    composed.push({ file: piece.file, from: [...plan.kept, ...(rest ? [rest.file] : [])] });
  }
  const { lanes, threads } = planLanes(
    toWrite.map((p) => p.parts),
    options.threads ?? os.availableParallelism(),
  );
  const db = options.kept ? await options.kept.take(threads) : await openDuckDB({ threads, memoryLimitMb: options.memoryLimitMb, tempDir: path.join(work, 'spill') });
  const conns = [db.conn];
  let prefetch: Promise<unknown> = Promise.resolve();
  let ended = false;
  let written = false;
  const attached = new Set<string>();
  try {
    const t0 = Date.now();
    // Only the parts of pieces not cached are needed (after an append, the new part alone). They are all fetched
    // from the start, a few at a time in the order the lanes take them, and a piece is written as soon as its
    // parts are here, while the next pieces' parts are fetched.
    // A lane meets a fetch's error itself; once the export ends (done or failed), no further part is fetched.
    prefetch = cache.ensureAll(toWrite.flatMap((p) => p.parts), 4, () => ended).catch(() => undefined);
    const attach = async (conn: DuckDBConnection, parts: readonly TablePart[]) => {
      const wanted = parts.filter((p) => !attached.has(p.id));
      for (const p of wanted) attached.add(p.id);
      const files = new Map<string, string>();
      (await cache.ensureAll(wanted)).forEach((got, i) => files.set(wanted[i]!.id, got.file));
      await attachParts([conn], files);
    };
    while (conns.length < lanes) conns.push(await db.instance.connect());
    const copyTo = (conn: DuckDBConnection, parts: readonly TablePart[], file: string) =>
      conn.runAndReadAll(`COPY (${partsSelectSql(parts, meta.columns)!}) TO ${quoteLiteral(file)} (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE ${options.rowGroupSize})`);
    let next = 0;
    let fetchMs = 0;
    await Promise.all(
      conns.slice(0, lanes).map(async (conn) => {
        while (next < toWrite.length) {
          const piece = toWrite[next++]!;
          const f0 = Date.now();
          await attach(conn, piece.parts);
          fetchMs += Date.now() - f0;
          const pieceTmp = `${piece.file}${TEMP_MARK}${randomBytes(4).toString('hex')}`;
          try {
            await copyTo(conn, piece.parts, pieceTmp);
            await rename(pieceTmp, piece.file);
          } finally {
            await rm(pieceTmp, { force: true });
          }
        }
      }),
    );
    const tPieces = Date.now();
    let rows: number;
    let joined = true;
    try {
      for (const c of composed) {
        const pieceTmp = `${c.file}${TEMP_MARK}${randomBytes(4).toString('hex')}`;
        try {
          await concatParquet(c.from, pieceTmp);
          await rename(pieceTmp, c.file);
        } finally {
          await rm(pieceTmp, { force: true });
        }
      }
      rows = (await concatParquet(pieces.map((p) => p.file), tmp)).rows;
    } catch (err) {
      if (!(err instanceof ParquetFormatError)) throw err;
      joined = false;
      // A piece that cannot be joined is not kept: the next export writes them all again.
      for (const piece of pieces) await rm(piece.file, { force: true });
      await db.conn.run(`SET threads = ${options.threads ?? os.availableParallelism()}`);
      await attach(db.conn, meta.parts);
      rows = Number((await copyTo(db.conn, meta.parts, tmp)).getRowsJS()[0]?.[0] ?? 0);
    }
    const t2 = Date.now();
    const joinMs = t2 - tPieces;
    // Fetching overlaps writing: the fetch share is the lanes' time waiting for parts, averaged over the lanes.
    const fetchShare = Math.round(fetchMs / Math.max(1, lanes));
    if (!(await mayReplace())) throw new Error(`lost the export lease of table ${meta.table}; another exporter writes it`);
    await replaceDurably(tmp, out);
    written = true;
    return { rows, bytes: (await stat(out)).size, fetchMs: fetchShare, copyMs: t2 - t0 - fetchShare, fetchedBytes: cache.fetchedBytes, pieces: pieces.length, piecesWritten: toWrite.length, piecesComposed: composed.length, joined, joinMs };
  } finally {
    ended = true;
    await prefetch;
    for (const conn of conns.slice(1)) conn.closeSync();
    await keepOrClose(db, written ? options.kept : undefined, attached);
    await rm(tmp, { force: true });
    await rm(work, { recursive: true, force: true });
    await cache.retain(new Set(meta.parts.map((p) => p.id))).catch(() => undefined);
    await retainPieces(pieceDir, new Set(pieces.map((p) => path.basename(p.file)))).catch(() => undefined);
  }
}

/** Gives a successful export's instance back to `kept` with its parts detached (their files may go), else closes it. */
async function keepOrClose(db: DuckDBHandle, kept: KeptDuckDB | undefined, attached: ReadonlySet<string>): Promise<void> {
  if (!kept) return closeDuckDB(db);
  try {
    for (const id of attached) await db.conn.run(`DETACH ${quoteIdent(partAlias({ id }))}`);
  } catch {
    return closeDuckDB(db);
  }
  kept.give(db);
}

/** Whether Redis still holds every one of `parts` whole. */
async function allStored(redis: RedisClient, keys: Keys, parts: readonly TablePart[]): Promise<boolean> {
  for (const p of parts) if (!(await isPartStored(redis, keys, p))) return false;
  return true;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Deletes the cached pieces of a table that the last export did not use (and leftovers of interrupted writes). */
async function retainPieces(dir: string, keep: ReadonlySet<string>): Promise<void> {
  for (const e of await readdir(dir)) if (!keep.has(e)) await rm(path.join(dir, e), { force: true });
}

/** Removes the local part cache and the cached pieces of a dropped table. */
export async function removePartCache(workDir: string, table: string): Promise<void> {
  await rm(path.join(workDir, 'parts', table), { recursive: true, force: true });
  await rm(path.join(workDir, 'pieces', table), { recursive: true, force: true });
}

export interface ExportResult {
  readonly table: string;
  readonly version: number;
  readonly rows: number;
  readonly bytes: number;
  readonly ms: number;
  readonly fetchMs: number;
  /** Of `copyMs`: joining the pieces into the file. */
  readonly joinMs: number;
  readonly copyMs: number;
  /** Bytes of parts fetched from Redis for this export (parts the previous export of the table did not have). */
  readonly fetchedBytes: number;
  /**
   * Parquet pieces joined into the file; how many pieces were written for this export (the rest were cached); and
   * how many pieces of merged parts were made by joining the pieces kept for the parts they merged.
   */
  readonly pieces: number;
  readonly piecesWritten: number;
  readonly piecesComposed: number;
  /** False when the pieces could not be joined and the file was written by one COPY. */
  readonly joined: boolean;
  readonly path: string;
}

/** What writing the Parquet file of a version measured. */
export type WrittenParquet = Omit<ExportResult, 'table' | 'version' | 'ms' | 'path'>;

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
  const written = await writeParquet(deps.redis, deps.keys, meta, out, deps.options, mayReplace);
  const { rows, bytes } = written;
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
  return { table: meta.table, version: meta.version, ...written, ms, path: out };
}

/** Removes a dropped table's export and manifest. */
export async function removeExport(redis: RedisClient, keys: Keys, exportDir: string, table: string): Promise<boolean> {
  const out = path.join(exportDir, `${table}.parquet`);
  const existed = await exists(out);
  await rm(path.join(exportDir, `${table}.manifest.json`), { force: true });
  await rm(out, { force: true });
  await removeStaleTemps(out);
  await redis.del(keys.tableExported(table));
  return existed;
}
