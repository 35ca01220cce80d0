import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  fileIdentity,
  fileKindOf,
  fingerprintNow,
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
import { FileReadError } from './read-file.js';
import type { FileReader } from './reader-pool.js';

/** Catalog alias of the snapshot database file while it is being built. */
export const SNAP = 'snap';
/** Schema inside the snapshot file holding one table per source file; the served table is a view over them. */
export const PARTS = 'parts';

const sameFingerprint = (a: FileFingerprint | null, b: FileFingerprint) => a !== null && fileIdentity(a) === fileIdentity(b);

/** Where the rows of one file come from in this build. */
export type FileSource =
  /** Read now (into the Parquet file `fragmentFile`, then into its part table). */
  | { kind: 'fresh'; path: string; fingerprint: FileFingerprint; part: string; fragmentId: string; fragmentFile: string; rows: number; columns: { name: string; type: string }[]; format: string }
  /** Unchanged since its fragment was stored: the fragment is loaded into the part table. */
  | { kind: 'cached'; path: string; fragment: Fragment; part: string }
  /** Unreadable now; an earlier readable version's fragment keeps its rows in the table. */
  | { kind: 'stale'; path: string; fragment: Fragment; part: string; failed: { fingerprint: FileFingerprint; message: string } }
  /** Unreadable and never read before: contributes no rows. */
  | { kind: 'failed'; path: string; fingerprint: FileFingerprint; message: string };

export type ReadableSource = Exclude<FileSource, { kind: 'failed' }>;

export interface LoadSourcesInput {
  /** Connections of one DuckDB instance with the snapshot file attached as `snap`; files load in parallel, one per connection. */
  readonly conns: readonly DuckDBConnection[];
  readonly dataDir: string;
  readonly workDir: string;
  readonly manifest: ReadonlyMap<string, FileFingerprint>;
  readonly fragments: ReadonlyMap<string, Fragment>;
  /** Fetches a stored fragment's Parquet bytes into a local file. */
  readonly fetchFragment: (fragment: Fragment, file: string) => Promise<void>;
  /** Reads a data file into a Parquet fragment (in a reader process, by default). */
  readonly reader: FileReader;
  /** Part tables already in the snapshot file (reused from the previous version): kept when still wanted. */
  readonly existingParts: ReadonlySet<string>;
  /** The id the fragment of a file read now will be stored under (it names its part table). */
  readonly newFragmentId: (index: number) => string;
}

/** The part table of a fragment is named after the fragment, so a later build can keep it as it is. */
export const partNameOf = (fragmentId: string) => `p_${fragmentId.replace(/[^A-Za-z0-9]/g, '_')}`;
export const partRef = (part: string, catalog = SNAP) => `${quoteIdent(catalog)}.${PARTS}.${quoteIdent(part)}`;

export interface LoadedSources {
  readonly sources: FileSource[];
  /**
   * Files that were gone while they were read (renamed or deleted meanwhile, even if back as they were by the
   * end): a snapshot built now would not show the manifest's generation, so it must be built again.
   */
  readonly changing: string[];
}

/** A reader error that says the file was not there (moved or renamed while it was opened), not that it is bad. */
const MISSING_FILE = /No such file or directory|ENOENT|No files found that match the pattern/i;

/**
 * Loads every file's rows into its own part table of the snapshot file. An unchanged file comes from
 * its stored fragment; a new or changed file is read (that is the only reading of data files); a file
 * that fails keeps the rows of its last readable version. Files load in parallel, one per connection.
 */
export async function loadSources(input: LoadSourcesInput): Promise<LoadedSources> {
  const { manifest, fragments } = input;
  const fragDir = path.join(input.workDir, 'fragments');
  await mkdir(fragDir, { recursive: true });

  const entries = [...manifest.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  const sources: (FileSource | null)[] = new Array<FileSource | null>(entries.length);
  const renamed = renamedFragments(manifest, fragments);
  const changing: string[] = [];

  const loadOne = async (conn: DuckDBConnection, i: number): Promise<FileSource | null> => {
    const [relPath, fp] = entries[i]!;
    const index = i + 1;
    const fragment = fragments.get(relPath) ?? renamed.get(relPath);
    let part = fragment && fragment.chunks > 0 ? partNameOf(fragment.blob) : partNameOf(input.newFragmentId(index));
    const fromFragment = async (f: Fragment) => {
      // The previous snapshot already holds this fragment's rows: nothing to fetch or load.
      if (input.existingParts.has(part)) return;
      const file = path.join(fragDir, `${part}-stored.parquet`);
      await input.fetchFragment(f, file);
      await conn.run(`CREATE TABLE ${partRef(part)} AS SELECT * FROM read_parquet(${quoteLiteral(file)})`);
    };
    const keepOld = async (message: string): Promise<FileSource> => {
      // A fragment without data only remembers an earlier failure: there are no rows to keep.
      if (!fragment || fragment.chunks === 0) return { kind: 'failed', path: relPath, fingerprint: fp, message };
      await fromFragment(fragment);
      return { kind: 'stale', path: relPath, fragment, part, failed: { fingerprint: fp, message } };
    };
    if (fp.refused) return await keepOld(fp.refused);
    if (fragment?.failed && sameFingerprint(fragment.failed.fingerprint, fp)) {
      // Failed before in exactly this version: do not read it again.
      return await keepOld(fragment.failed.message);
    }
    if (fragment && fragment.chunks > 0 && sameFingerprint(fragment.fingerprint, fp)) {
      await fromFragment(fragment);
      return { kind: 'cached', path: relPath, fragment, part };
    }
    const kind = fileKindOf(relPath);
    if (!kind) return { kind: 'failed', path: relPath, fingerprint: fp, message: 'not a data file FlashDuck reads' };
    const absPath = path.join(input.dataDir, relPath);
    // The file must be the version the manifest names, before and after the read: a file renamed, deleted or
    // rewritten meanwhile was read in a state the manifest does not describe (or not at all). The monitor sees
    // that change and sends a diff of its own; this build serves the file's last stored rows, or none yet.
    // A file gone (even for a moment) is built again shortly: renamed away and back, it leaves the monitor
    // nothing to report. A file written meanwhile is reported by the monitor once it settles.
    let gone = false;
    const changedMeanwhile = async () => {
      const now = await fingerprintNow(absPath);
      gone ||= now === null;
      return !sameFingerprint(now, fp);
    };
    const lastStored = async (): Promise<FileSource | null> => {
      if (gone) changing.push(relPath);
      if (!fragment || fragment.chunks === 0) return null;
      part = partNameOf(fragment.blob);
      await fromFragment(fragment);
      return { kind: 'cached', path: relPath, fragment, part };
    };
    if (await changedMeanwhile()) return await lastStored();
    part = partNameOf(input.newFragmentId(index));
    const fragmentFile = path.join(fragDir, `${part}.parquet`);
    try {
      const read = await input.reader.read({ absPath, relPath, kind, out: fragmentFile });
      if (await changedMeanwhile()) return await lastStored();
      await conn.run(`CREATE OR REPLACE TABLE ${partRef(part)} AS SELECT * FROM read_parquet(${quoteLiteral(fragmentFile)})`);
      return { kind: 'fresh', path: relPath, fingerprint: fp, part, fragmentId: input.newFragmentId(index), fragmentFile, rows: read.rows, columns: read.columns, format: kind.format };
    } catch (err) {
      if (MISSING_FILE.test(err instanceof Error ? err.message : String(err))) gone = true;
      if ((await changedMeanwhile()) || gone) return await lastStored();
      if (!(err instanceof FileReadError)) throw err;
      return await keepOld(err.message);
    }
  };

  let next = 0;
  await Promise.all(
    input.conns.map(async (conn) => {
      while (next < entries.length) {
        const i = next++;
        sources[i] = await loadOne(conn, i);
      }
    }),
  );
  return { sources: sources.filter((s): s is FileSource => s !== null), changing };
}

/**
 * Fragments of renamed files, by their new path: a path with no fragment of its own takes the fragment of a
 * path that left the manifest with the same file identity (device, inode, size, mtime). A rename then costs
 * no read, and a file renamed again before it is read still has its rows.
 */
export function renamedFragments(manifest: ReadonlyMap<string, FileFingerprint>, fragments: ReadonlyMap<string, Fragment>): Map<string, Fragment> {
  const gone = new Map<string, Fragment>();
  for (const [p, f] of fragments) if (!manifest.has(p) && f.chunks > 0) gone.set(fileIdentity(f.fingerprint), f);
  const out = new Map<string, Fragment>();
  if (gone.size === 0) return out;
  for (const [p, fp] of manifest) {
    if (fragments.has(p)) continue;
    const f = gone.get(fileIdentity(fp));
    if (!f) continue;
    gone.delete(fileIdentity(fp)); // one new path per fragment (a part table is named after its fragment)
    out.set(p, { ...f, path: p });
  }
  return out;
}

function columnsOf(s: FileSource): { name: string; type: string }[] {
  if (s.kind === 'fresh') return s.columns;
  if (s.kind === 'failed') return [];
  return s.fragment.columns;
}

/**
 * The merged schema over the readable sources, and the SQL of the view that serves them: every part
 * cast to the merged types, a column a file lacks as NULL. Part references are relative to the
 * snapshot file, so the view resolves wherever the file is attached.
 */
export function assembleView(sources: readonly FileSource[], table: string): { schema: MergedSchema; createView: string | null } {
  const readable = sources.filter((s): s is ReadableSource => s.kind !== 'failed');
  const schema = mergeSchemas(readable.map((s) => ({ file: s.path, columns: columnsOf(s) })));
  if (schema.columns.length === 0 || readable.length === 0) return { schema, createView: null };
  const parts = readable.map((s) => {
    const have = new Map(columnsOf(s).map((c) => [c.name.toLowerCase(), c.name]));
    const list = schema.columns.map((col) => {
      const own = have.get(col.name.toLowerCase());
      const expr = own === undefined ? 'NULL' : quoteIdent(own);
      return `CAST(${expr} AS ${col.type}) AS ${quoteIdent(col.name)}`;
    });
    return `SELECT ${list.join(', ')} FROM ${PARTS}.${quoteIdent(s.part)}`;
  });
  return { schema, createView: `CREATE VIEW ${quoteIdent(SNAP)}.main.${quoteIdent(table)} AS\n${parts.join('\nUNION ALL\n')}` };
}

/**
 * JSON numbers are read back as doubles: numbers a double cannot hold exactly (DECIMAL wider than
 * 15 digits, 128-bit integers) travel as strings and are cast back by the loader.
 */
function jsonSafeSelect(source: string, columns: readonly { name: string; type: string }[]): string {
  const exact = (t: string) => /^(HUGEINT|UHUGEINT)$/.test(t) || Number(/^DECIMAL\((\d+),/.exec(t)?.[1] ?? 0) > 15;
  const list = columns.map((c) => (exact(c.type) ? `CAST(${quoteIdent(c.name)} AS VARCHAR) AS ${quoteIdent(c.name)}` : quoteIdent(c.name)));
  return `SELECT ${list.join(', ')} FROM ${source}`;
}

/**
 * Writes the snapshot in a format other than `duckdb` (which is the snapshot database file itself),
 * reading the view from the snapshot file attached as `catalog`. Returns the row count.
 */
export async function exportSnapshotFile(
  conn: DuckDBConnection,
  catalog: string,
  table: string,
  format: Exclude<SnapshotFormat, 'duckdb'>,
  file: string,
  columns: readonly { name: string; type: string }[],
): Promise<number> {
  const source = `${quoteIdent(catalog)}.main.${quoteIdent(table)}`;
  switch (format) {
    case 'parquet': {
      const r = await conn.runAndReadAll(`COPY (SELECT * FROM ${source}) TO ${quoteLiteral(file)} (FORMAT parquet, COMPRESSION zstd)`);
      return Number(r.getRowsJS()[0]?.[0] ?? 0);
    }
    case 'json': {
      const r = await conn.runAndReadAll(`COPY (${jsonSafeSelect(source, columns)}) TO ${quoteLiteral(file)} (FORMAT json)`);
      return Number(r.getRowsJS()[0]?.[0] ?? 0);
    }
    case 'arrow': {
      const result = await conn.stream(`SELECT * FROM ${source}`);
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
