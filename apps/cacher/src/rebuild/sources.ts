import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  fileIdentity,
  fileKindOf,
  fingerprintNow,
  type FileError,
  type FileFingerprint,
  type Fragment,
  type PartRef,
  type SnapshotFile,
  type TablePart,
} from '@flashduck/core';
import { mergeSchemas, type MergedSchema } from '@flashduck/schema';
import { FileReadError, type ReadFileResult } from './read-file.js';
import { NO_OPTIONS, type TableOptions } from './table-options.js';
import type { FileReader } from './reader-pool.js';

const sameFingerprint = (a: FileFingerprint | null, b: FileFingerprint) => a !== null && fileIdentity(a) === fileIdentity(b);

/** A stored fragment that holds rows (a part and the file's member number in it). */
export type StoredFragment = Fragment & { part: NonNullable<Fragment['part']> };
const holdsRows = (f: Fragment | undefined): f is StoredFragment => f?.part !== undefined;

/** Where the rows of one file come from in this build. */
export type FileSource =
  /** Read now into the part file `file` (a DuckDB database), stored at once as a new part (`part`). */
  | {
      kind: 'fresh';
      path: string;
      fingerprint: FileFingerprint;
      file: string;
      rows: number;
      columns: ReadFileResult['columns'];
      format: string;
      part: PartRef;
      written: number;
      /** The reader options' hash it was read with ('' for none). */
      options: string;
      skipped?: ReadFileResult['skipped'];
    }
  /** Unchanged since it was read: its rows stay in the part that holds them. */
  | { kind: 'cached'; path: string; fragment: StoredFragment }
  /** Unreadable now; an earlier readable version's rows stay in the table. */
  | { kind: 'stale'; path: string; fragment: StoredFragment; failed: { fingerprint: FileFingerprint; message: string; options?: string } }
  /** Unreadable and never read before: contributes no rows. */
  | { kind: 'failed'; path: string; fingerprint: FileFingerprint; message: string; options?: string };

export type ReadableSource = Exclude<FileSource, { kind: 'failed' }>;

export interface ReadSourcesInput {
  readonly dataDir: string;
  readonly workDir: string;
  readonly manifest: ReadonlyMap<string, FileFingerprint>;
  readonly fragments: ReadonlyMap<string, Fragment>;
  /** Reads a data file into a part file (in a reader process, by default). */
  readonly reader: FileReader;
  /** Files read at once. */
  readonly parallelism: number;
  /** The table's reader options (`_table.yaml`), for its CSV/TSV files. */
  readonly options?: TableOptions;
  /** Stores a file read now as a part (while the next files are read). */
  readonly store: (file: string, shape: { rows: number; members: number; columns: { name: string; type: string }[] }) => Promise<{ part: PartRef; written: number }>;
}

export interface ReadSources {
  readonly sources: FileSource[];
  /**
   * Files that were gone while they were read (renamed or deleted meanwhile, even if back as they were by the
   * end): a version built now would not show the manifest's generation, so it must be built again.
   */
  readonly changing: string[];
}

/** A reader error that says the file was not there (moved or renamed while it was opened), not that it is bad. */
const MISSING_FILE = /No such file or directory|ENOENT|No files found that match the pattern/i;

/**
 * Decides where every file's rows come from. An unchanged file keeps the part that holds its rows (nothing is
 * read, fetched or copied); a new or changed file is read into a part file (the only reading of data files);
 * a file that fails keeps the rows of its last readable version. Files are read in parallel.
 */
export async function readSources(input: ReadSourcesInput): Promise<ReadSources> {
  const { manifest, fragments } = input;
  const readDir = path.join(input.workDir, 'read');
  await mkdir(readDir, { recursive: true });

  const entries = [...manifest.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  const sources: (FileSource | null)[] = new Array<FileSource | null>(entries.length);
  const renamed = renamedFragments(manifest, fragments);
  const changing: string[] = [];

  const readOne = async (i: number): Promise<FileSource | null> => {
    const [relPath, fp] = entries[i]!;
    const fragment = fragments.get(relPath) ?? renamed.get(relPath);
    const kind = fileKindOf(relPath);
    // The table's reader options apply to its CSV/TSV files: a file read with other options is read again.
    const options = input.options ?? NO_OPTIONS;
    const optionsHash = kind?.format === 'csv' || kind?.format === 'tsv' ? options.hash : '';
    const keepOld = (message: string): FileSource => {
      // A fragment without a part only remembers an earlier failure: there are no rows to keep.
      if (!holdsRows(fragment)) return { kind: 'failed', path: relPath, fingerprint: fp, message, options: optionsHash };
      return { kind: 'stale', path: relPath, fragment: { ...fragment, path: relPath }, failed: { fingerprint: fp, message, options: optionsHash } };
    };
    if (fp.refused) return keepOld(fp.refused);
    // Failed before in exactly this version, with these options: do not read it again.
    if (fragment?.failed && sameFingerprint(fragment.failed.fingerprint, fp) && (fragment.failed.options ?? '') === optionsHash) return keepOld(fragment.failed.message);
    if (holdsRows(fragment) && sameFingerprint(fragment.fingerprint, fp) && (fragment.options ?? '') === optionsHash) {
      return { kind: 'cached', path: relPath, fragment: { ...fragment, path: relPath } };
    }
    if (!kind) return { kind: 'failed', path: relPath, fingerprint: fp, message: 'not a data file FlashDuck reads' };
    if (optionsHash && !options.ok) return keepOld(options.error);
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
    const lastStored = (): FileSource | null => {
      if (gone) changing.push(relPath);
      if (!holdsRows(fragment)) return null;
      return { kind: 'cached', path: relPath, fragment: { ...fragment, path: relPath } };
    };
    if (await changedMeanwhile()) return lastStored();
    const file = path.join(readDir, `${i + 1}.duckdb`);
    try {
      const read = await input.reader.read({ absPath, relPath, kind, out: file, ...(optionsHash && options.ok ? { csv: options.csv } : {}) });
      if (await changedMeanwhile()) return lastStored();
      const { part, written } = await input.store(file, { rows: read.rows, members: 1, columns: read.columns.map((c) => ({ name: c.name, type: c.type })) });
      return { kind: 'fresh', path: relPath, fingerprint: fp, file, rows: read.rows, columns: read.columns, format: kind.format, part, written, options: optionsHash, ...(read.skipped ? { skipped: read.skipped } : {}) };
    } catch (err) {
      if (MISSING_FILE.test(err instanceof Error ? err.message : String(err))) gone = true;
      if ((await changedMeanwhile()) || gone) return lastStored();
      if (!(err instanceof FileReadError)) throw err;
      return keepOld(err.message);
    }
  };

  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, input.parallelism) }, async () => {
      while (next < entries.length) {
        const i = next++;
        sources[i] = await readOne(i);
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
  for (const [p, f] of fragments) if (!manifest.has(p) && holdsRows(f)) gone.set(fileIdentity(f.fingerprint), f);
  const out = new Map<string, Fragment>();
  if (gone.size === 0) return out;
  for (const [p, fp] of manifest) {
    if (fragments.has(p)) continue;
    const f = gone.get(fileIdentity(fp));
    if (!f) continue;
    gone.delete(fileIdentity(fp)); // one new path per fragment: a part member serves one file
    out.set(p, { ...f, path: p });
  }
  return out;
}

function columnsOf(s: FileSource): { name: string; type: string; mixed?: string[] }[] {
  if (s.kind === 'fresh') return s.columns;
  if (s.kind === 'failed') return [];
  return s.fragment.columns;
}

/** The table's merged schema over its readable files. */
export function tableSchema(sources: readonly FileSource[]): MergedSchema {
  const readable = sources.filter((s): s is ReadableSource => s.kind !== 'failed');
  return mergeSchemas(readable.map((s) => ({ file: s.path, columns: columnsOf(s) })));
}

/**
 * The parts a version lists, from where each file's rows are: every part holding a served file, with the
 * members it holds that no served file uses (changed or gone since a merge) excluded. Two files with the same
 * bytes have the same single-file part: it is listed once per file, so both files' rows are served.
 */
export function versionParts(fragments: readonly StoredFragment[]): TablePart[] {
  const merged = new Map<string, { part: StoredFragment['part']; members: Set<number> }>();
  const single: TablePart[] = [];
  for (const f of fragments) {
    if (f.part.members === 1) {
      single.push({ ...f.part });
      continue;
    }
    const u = merged.get(f.part.id) ?? { part: f.part, members: new Set<number>() };
    u.members.add(f.member);
    merged.set(f.part.id, u);
  }
  const multi = [...merged.values()].map(({ part, members }) => {
    const exclude = Array.from({ length: part.members }, (_, i) => i).filter((i) => !members.has(i));
    return exclude.length ? { ...part, exclude } : { ...part };
  });
  return [...single, ...multi].sort((a, b) => a.id.localeCompare(b.id));
}

/** What the version says about its files: rows per file, errors by file. */
export function describeSources(sources: readonly FileSource[]): { files: SnapshotFile[]; errors: FileError[] } {
  const files: SnapshotFile[] = [];
  const errors: FileError[] = [];
  for (const s of sources) {
    const fp = s.kind === 'fresh' || s.kind === 'failed' ? s.fingerprint : s.kind === 'stale' ? s.failed.fingerprint : s.fragment.fingerprint;
    const rows = s.kind === 'fresh' ? s.rows : s.kind === 'failed' ? 0 : s.fragment.rows;
    const format = s.kind === 'fresh' ? s.format : s.kind === 'failed' ? (fileKindOf(s.path)?.format ?? 'unknown') : s.fragment.format;
    const skipped = s.kind === 'fresh' ? s.skipped : s.kind === 'cached' ? s.fragment.skipped : undefined;
    files.push({ path: s.path, size: fp.size, mtimeMs: fp.mtimeMs, rows, format, ...(s.kind === 'stale' ? { stale: true } : {}), ...(skipped ? { skipped: skipped.rows } : {}) });
    if (skipped) {
      const first = skipped.lines.map((l) => `line ${l.line}: ${l.message}`).join('; ');
      errors.push({ file: s.path, message: `${skipped.rows} row(s) skipped (ignore_errors in _table.yaml): ${first}${skipped.rows > skipped.lines.length ? '; …' : ''}`, skipped });
    }
    if (s.kind === 'failed') errors.push({ file: s.path, message: s.message });
    if (s.kind === 'stale') {
      errors.push({ file: s.path, message: `${s.failed.message} (serving the ${s.fragment.rows} rows of its last readable version)` });
    }
  }
  return { files, errors };
}
