import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  fileKindOf,
  quoteIdent,
  quoteLiteral,
  type FileError,
  type FileFingerprint,
  type Fragment,
  type SnapshotFile,
  type SnapshotFormat,
} from '@flashduck/core';
import { encodeArrowStream } from '@flashduck/core/duckdb';
import { mergeSchemas, type MergedSchema } from '@flashduck/schema';
import { writeFile } from 'node:fs/promises';
import { FileReadError, readFileIntoTable } from './read-file.js';

const sameFingerprint = (a: FileFingerprint, b: FileFingerprint) =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev;

/** Where the rows of one file come from in this build. */
export type FileSource =
  /** Read now into a DuckDB table; `fragmentFile` holds the same rows as Parquet to store. */
  | { kind: 'fresh'; path: string; fingerprint: FileFingerprint; table: string; fragmentFile: string; rows: number; columns: { name: string; type: string }[]; format: string }
  /** Unchanged since its fragment was stored: the fragment is read back. */
  | { kind: 'cached'; path: string; fragment: Fragment; fragmentFile: string }
  /** Unreadable now; an earlier readable version's fragment keeps its rows in the table. */
  | { kind: 'stale'; path: string; fragment: Fragment; fragmentFile: string; failed: { fingerprint: FileFingerprint; message: string } }
  /** Unreadable and never read before: contributes no rows. */
  | { kind: 'failed'; path: string; fingerprint: FileFingerprint; message: string };

export interface BuildPlanInput {
  readonly conn: DuckDBConnection;
  readonly dataDir: string;
  readonly workDir: string;
  readonly manifest: ReadonlyMap<string, FileFingerprint>;
  readonly fragments: ReadonlyMap<string, Fragment>;
  /** Fetches a stored fragment's Parquet bytes into a local file. */
  readonly fetchFragment: (fragment: Fragment, file: string) => Promise<void>;
}

/**
 * Decides, file by file, where rows come from: an unchanged file reuses its stored fragment, a new or
 * changed file is read (and becomes a fresh fragment), and a file that fails keeps the rows of its last
 * readable version. Only changed files are read; the rest are loaded from their fragments.
 */
export async function planSources(input: BuildPlanInput): Promise<FileSource[]> {
  const { conn, manifest, fragments } = input;
  const linkDir = path.join(input.workDir, 'links');
  const fragDir = path.join(input.workDir, 'fragments');
  await mkdir(linkDir, { recursive: true });
  await mkdir(fragDir, { recursive: true });
  const sources: FileSource[] = [];
  let index = 0;
  for (const [relPath, fp] of [...manifest.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    index += 1;
    const fragment = fragments.get(relPath);
    const fragmentFile = path.join(fragDir, `f${index}.parquet`);
    const keepOld = async (message: string): Promise<FileSource> => {
      // A fragment without data only remembers an earlier failure: there are no rows to keep.
      if (!fragment || fragment.chunks === 0) return { kind: 'failed', path: relPath, fingerprint: fp, message };
      await input.fetchFragment(fragment, fragmentFile);
      return { kind: 'stale', path: relPath, fragment, fragmentFile, failed: { fingerprint: fp, message } };
    };
    if (fp.refused) {
      sources.push(await keepOld(fp.refused));
      continue;
    }
    if (fragment?.failed && sameFingerprint(fragment.failed.fingerprint, fp)) {
      // Failed before in exactly this version: do not read it again.
      sources.push(await keepOld(fragment.failed.message));
      continue;
    }
    if (fragment && fragment.chunks > 0 && sameFingerprint(fragment.fingerprint, fp)) {
      await input.fetchFragment(fragment, fragmentFile);
      sources.push({ kind: 'cached', path: relPath, fragment, fragmentFile });
      continue;
    }
    const kind = fileKindOf(relPath);
    if (!kind) continue;
    const table = `src_${index}`;
    try {
      const read = await readFileIntoTable(conn, {
        absPath: path.join(input.dataDir, relPath),
        relPath,
        kind,
        table,
        linkDir,
        index,
      });
      await conn.run(`COPY ${quoteIdent(table)} TO ${quoteLiteral(fragmentFile)} (FORMAT parquet, COMPRESSION zstd)`);
      sources.push({ kind: 'fresh', path: relPath, fingerprint: fp, table, fragmentFile, rows: read.rows, columns: read.columns, format: kind.format });
    } catch (err) {
      if (!(err instanceof FileReadError)) throw err;
      sources.push(await keepOld(err.message));
    }
  }
  return sources;
}

function columnsOf(s: FileSource): { name: string; type: string }[] {
  if (s.kind === 'fresh') return s.columns;
  if (s.kind === 'failed') return [];
  return s.fragment.columns;
}

function relationOf(s: Exclude<FileSource, { kind: 'failed' }>): string {
  return s.kind === 'fresh' ? quoteIdent(s.table) : `read_parquet(${quoteLiteral(s.fragmentFile)})`;
}

/** The merged schema over the sources, and the SQL that yields every row in it. */
export function assembleQuery(sources: readonly FileSource[]): { schema: MergedSchema; sql: string | null } {
  const readable = sources.filter((s): s is Exclude<FileSource, { kind: 'failed' }> => s.kind !== 'failed');
  const schema = mergeSchemas(readable.map((s) => ({ file: s.path, columns: columnsOf(s) })));
  if (schema.columns.length === 0 || readable.length === 0) return { schema, sql: null };
  const parts = readable.map((s) => {
    const have = new Map(columnsOf(s).map((c) => [c.name.toLowerCase(), c.name]));
    const list = schema.columns.map((col) => {
      const own = have.get(col.name.toLowerCase());
      const target = col.type;
      const expr = own === undefined ? 'NULL' : quoteIdent(own);
      return `CAST(${expr} AS ${target}) AS ${quoteIdent(col.name)}`;
    });
    return `SELECT ${list.join(', ')} FROM ${relationOf(s)}`;
  });
  return { schema, sql: parts.join('\nUNION ALL\n') };
}

/**
 * JSON numbers are read back as doubles: numbers a double cannot hold exactly (DECIMAL wider than
 * 15 digits, 128-bit integers) travel as strings and are cast back by the loader.
 */
function jsonSafeSelect(sql: string, columns: readonly { name: string; type: string }[]): string {
  const exact = (t: string) => /^(HUGEINT|UHUGEINT)$/.test(t) || Number(/^DECIMAL\((\d+),/.exec(t)?.[1] ?? 0) > 15;
  if (!columns.some((c) => exact(c.type))) return sql;
  const list = columns.map((c) => (exact(c.type) ? `CAST(${quoteIdent(c.name)} AS VARCHAR) AS ${quoteIdent(c.name)}` : quoteIdent(c.name)));
  return `SELECT ${list.join(', ')} FROM (${sql})`;
}

/** Writes the assembled rows as a snapshot file in `format`; returns the row count. */
export async function writeSnapshotFile(
  conn: DuckDBConnection,
  sql: string,
  format: SnapshotFormat,
  table: string,
  file: string,
  columns: readonly { name: string; type: string }[],
): Promise<number> {
  switch (format) {
    case 'duckdb': {
      await conn.run(`ATTACH ${quoteLiteral(file)} AS snap`);
      try {
        await conn.run(`CREATE TABLE snap.main.${quoteIdent(table)} AS ${sql}`);
        const r = await conn.runAndReadAll(`SELECT count(*) FROM snap.main.${quoteIdent(table)}`);
        return Number(r.getRowsJS()[0]?.[0] ?? 0);
      } finally {
        await conn.run('DETACH snap');
      }
    }
    case 'parquet': {
      const r = await conn.runAndReadAll(`COPY (${sql}) TO ${quoteLiteral(file)} (FORMAT parquet, COMPRESSION zstd)`);
      return Number(r.getRowsJS()[0]?.[0] ?? 0);
    }
    case 'json': {
      const r = await conn.runAndReadAll(`COPY (${jsonSafeSelect(sql, columns)}) TO ${quoteLiteral(file)} (FORMAT json)`);
      return Number(r.getRowsJS()[0]?.[0] ?? 0);
    }
    case 'arrow': {
      const result = await conn.stream(sql);
      const { bytes, rows } = await encodeArrowStream(result);
      await writeFile(file, bytes);
      return rows;
    }
  }
}

/** What the snapshot says about its files: rows per file, errors by file. */
export function describeSources(sources: readonly FileSource[]): { files: SnapshotFile[]; errors: FileError[] } {
  const files: SnapshotFile[] = [];
  const errors: FileError[] = [];
  for (const s of sources) {
    const fp = s.kind === 'fresh' || s.kind === 'failed' ? s.fingerprint : s.kind === 'stale' ? s.failed.fingerprint : s.fragment.fingerprint;
    const rows = s.kind === 'fresh' ? s.rows : s.kind === 'failed' ? 0 : s.fragment.rows;
    const format = s.kind === 'fresh' ? s.format : s.kind === 'failed' ? (fileKindOf(s.path)?.format ?? 'unknown') : s.fragment.format;
    files.push({ path: s.path, size: fp.size, mtimeMs: fp.mtimeMs, rows, format, ...(s.kind === 'stale' ? { stale: true } : {}) });
    if (s.kind === 'failed') errors.push({ file: s.path, message: s.message });
    if (s.kind === 'stale') {
      errors.push({ file: s.path, message: `${s.failed.message} (serving the ${s.fragment.rows} rows of its last readable version)` });
    }
  }
  return { files, errors };
}
