import path from 'node:path';

/** File formats FlashDuck reads. */
export type FileFormat = 'csv' | 'tsv' | 'json' | 'ndjson' | 'parquet' | 'arrow';

/** How a data file is read. */
export interface FileKind {
  readonly format: FileFormat;
  /** Compression of a text file, which DuckDB decompresses while reading. */
  readonly compression: 'gzip' | 'zstd' | null;
  /** The file's extensions, e.g. `.csv.gz`. */
  readonly extension: string;
}

const FORMATS: Readonly<Record<string, FileFormat>> = {
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.json': 'json',
  '.jsonl': 'ndjson',
  '.ndjson': 'ndjson',
  '.parquet': 'parquet',
  '.arrow': 'arrow',
  '.feather': 'arrow',
  '.ipc': 'arrow',
  '.arrows': 'arrow',
};
const COMPRESSIONS: Readonly<Record<string, 'gzip' | 'zstd'>> = { '.gz': 'gzip', '.zst': 'zstd' };
const TEMP_SUFFIXES = ['.tmp', '~', '.partial', '.swp', '.crdownload', '.part'];

/**
 * True for names FlashDuck never reads: hidden files, names starting with `_` or `.`,
 * and temp files (`*.tmp`, `*~`, `*.partial`, `*.swp`, `*.crdownload`, `*.part`).
 */
export function isIgnoredName(name: string): boolean {
  if (name.startsWith('.') || name.startsWith('_')) return true;
  const lower = name.toLowerCase();
  return TEMP_SUFFIXES.some((s) => lower.endsWith(s));
}

/** The file in a table's folder that holds its reader options (read by the cacher, recorded by the monitor). */
export const TABLE_OPTIONS_FILE = '_table.yaml';

/** True for `<table>/_table.yaml`, directly in a table's folder. */
export function isTableOptionsPath(relPath: string): boolean {
  const parts = relPath.split('/');
  return parts.length === 2 && parts[1] === TABLE_OPTIONS_FILE;
}

/** The format of a data file from its name; null when FlashDuck does not read it. */
export function fileKindOf(name: string): FileKind | null {
  const lower = name.toLowerCase();
  let compression: 'gzip' | 'zstd' | null = null;
  let rest = lower;
  const outer = path.extname(rest);
  if (outer in COMPRESSIONS) {
    compression = COMPRESSIONS[outer]!;
    rest = rest.slice(0, -outer.length);
  }
  const ext = path.extname(rest);
  const format = FORMATS[ext];
  if (!format) return null;
  if ((format === 'parquet' || format === 'arrow') && compression) return null;
  return { format, compression, extension: ext + (compression ? outer : '') };
}

/**
 * Normalizes a raw name into a table name: lower case, every run of characters other than
 * `a-z`, `0-9` and `_` becomes `_`, leading/trailing `_` removed, `t_` prepended if it starts
 * with a digit, at most 63 characters. Null when nothing is left.
 */
export function normalizeTableName(raw: string): string | null {
  let name = raw
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!name) return null;
  if (/^[0-9]/.test(name)) name = `t_${name}`;
  return name.slice(0, 63);
}

/** True when `name` is already a valid table name. */
export function isTableName(name: string): boolean {
  return normalizeTableName(name) === name;
}

/**
 * The table a data file belongs to, from its path relative to the data dir:
 * `orders/2024/a.csv` → `orders`; `customers.parquet` → `customers`. Null when the file is
 * not a data file or its name has no usable characters.
 */
export function tableOfPath(relPath: string): string | null {
  const parts = relPath.split(/[\\/]/).filter(Boolean);
  const first = parts[0];
  if (!first) return null;
  if (parts.length > 1) return normalizeTableName(first);
  const kind = fileKindOf(first);
  if (!kind) return null;
  return normalizeTableName(first.slice(0, first.length - kind.extension.length));
}
