import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { TABLE_OPTIONS_FILE, quoteIdent, quoteLiteral } from '@flashduck/core';
import { parse } from 'yaml';


/** DuckDB `read_csv` options a table may set, validated: never a path, never a setting. */
export interface CsvOptions {
  header?: boolean;
  names?: string[];
  delim?: string;
  quote?: string;
  escape?: string;
  types?: Record<string, string>;
  dateformat?: string;
  timestampformat?: string;
  nullstr?: string[];
  ignore_errors?: boolean;
  skip?: number;
  decimal_separator?: string;
  comment?: string;
  null_padding?: boolean;
  strict_mode?: boolean;
  all_varchar?: boolean;
  encoding?: string;
  max_line_size?: number;
}

/** The options file of a table as the cacher uses it: the options, their hash (part of each CSV's identity), or why not. */
export type TableOptions = { ok: true; csv: CsvOptions; hash: string } | { ok: false; error: string; hash: string };

/** No options file: DuckDB's reader with FlashDuck's defaults. */
export const NO_OPTIONS: TableOptions = { ok: true, csv: {}, hash: '' };

const TYPE_RE = /^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\d*\])*$/;
const ENCODINGS = ['utf-8', 'utf-16', 'latin-1'];

type Check = (value: unknown, key: string) => unknown;
const bool: Check = (v, k) => {
  if (typeof v !== 'boolean') throw new Error(`"${k}" must be true or false`);
  return v;
};
const char = (max: number, allowEmpty = false): Check => (v, k) => {
  if (typeof v !== 'string' || v.length > max || (!allowEmpty && v.length === 0)) throw new Error(`"${k}" must be a string of ${allowEmpty ? '0' : '1'} to ${max} characters`);
  return v;
};
const text: Check = (v, k) => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 200) throw new Error(`"${k}" must be a non-empty string`);
  return v;
};
const int = (min: number, max: number): Check => (v, k) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new Error(`"${k}" must be an integer from ${min} to ${max}`);
  return v;
};

/** Every key a table may set, each with its check (DuckDB's own option names). */
const CHECKS: Record<keyof CsvOptions, Check> = {
  header: bool,
  names: (v, k) => {
    if (!Array.isArray(v) || v.length === 0 || !v.every((n) => typeof n === 'string' && n.length > 0 && n.length <= 255)) throw new Error(`"${k}" must be a list of column names`);
    return v as string[];
  },
  delim: char(4),
  quote: char(1, true),
  escape: char(1, true),
  types: (v, k) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`"${k}" must map column names to DuckDB types, e.g. {id: BIGINT, day: DATE}`);
    for (const [col, t] of Object.entries(v)) {
      if (typeof t !== 'string' || !TYPE_RE.test(t)) throw new Error(`"${k}.${col}": ${JSON.stringify(t)} is not a DuckDB type name`);
    }
    return v;
  },
  dateformat: text,
  timestampformat: text,
  nullstr: (v, k) => {
    const list: unknown = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s.length <= 64)) throw new Error(`"${k}" must be a string or a list of strings`);
    return list as string[];
  },
  ignore_errors: bool,
  skip: int(0, 1_000_000),
  decimal_separator: (v, k) => {
    if (v !== '.' && v !== ',') throw new Error(`"${k}" must be "." or ","`);
    return v;
  },
  comment: char(1),
  null_padding: bool,
  strict_mode: bool,
  all_varchar: bool,
  encoding: (v, k) => {
    if (typeof v !== 'string' || !ENCODINGS.includes(v.toLowerCase())) throw new Error(`"${k}" must be one of ${ENCODINGS.join(', ')}`);
    return v.toLowerCase();
  },
  max_line_size: int(1024, 1 << 30),
};
const ALIASES: Record<string, keyof CsvOptions> = { sep: 'delim', delimiter: 'delim', dtypes: 'types', column_types: 'types', column_names: 'names' };

/**
 * Parses and validates a table's `_table.yaml`: a map of DuckDB `read_csv` option names (`header`, `names`,
 * `delim`, `quote`, `escape`, `types`, `dateformat`, `timestampformat`, `nullstr`, `ignore_errors`, `skip`,
 * `decimal_separator`, `comment`, `null_padding`, `strict_mode`, `all_varchar`, `encoding`, `max_line_size`),
 * optionally under a `csv:` key. Anything else is refused with the table and the key named.
 */
export function parseTableOptions(table: string, source: string): TableOptions {
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const where = `${table}/${TABLE_OPTIONS_FILE}`;
  let doc: unknown;
  try {
    doc = parse(source);
  } catch (err) {
    return { ok: false, hash, error: `${where} is not valid YAML: ${(err as Error).message.split('\n')[0]}` };
  }
  if (doc === null || doc === undefined) return { ok: true, csv: {}, hash };
  if (typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, hash, error: `${where} must be a map of reader options, e.g. "header: false"` };
  let map = doc as Record<string, unknown>;
  if ('csv' in map) {
    const extra = Object.keys(map).filter((k) => k !== 'csv');
    if (extra.length) return { ok: false, hash, error: `${where}: unknown key "${extra[0]}" beside "csv"` };
    map = (map.csv ?? {}) as Record<string, unknown>;
    if (typeof map !== 'object' || Array.isArray(map)) return { ok: false, hash, error: `${where}: "csv" must be a map of reader options` };
  }
  const csv: Record<string, unknown> = {};
  for (const [raw, value] of Object.entries(map)) {
    const key = ALIASES[raw.toLowerCase()] ?? (raw.toLowerCase() as keyof CsvOptions);
    const check = CHECKS[key];
    if (!check) return { ok: false, hash, error: `${where}: unknown key "${raw}" for table ${table} (allowed: ${Object.keys(CHECKS).join(', ')})` };
    try {
      csv[key] = check(value, raw);
    } catch (err) {
      return { ok: false, hash, error: `${where}: ${(err as Error).message}` };
    }
  }
  const o = csv as CsvOptions;
  if (o.names && o.types && Object.keys(o.types).some((c) => !o.names!.includes(c))) {
    return { ok: false, hash, error: `${where}: "types" names a column that "names" does not list` };
  }
  return { ok: true, csv: o, hash };
}

/** Reads a table's options file (absent: no options). */
export async function loadTableOptions(dataDir: string, table: string, relPath: string | undefined): Promise<TableOptions> {
  if (!relPath) return NO_OPTIONS;
  let source: string;
  try {
    source = await readFile(path.join(dataDir, relPath), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return NO_OPTIONS;
    return { ok: false, hash: 'unreadable', error: `${relPath} cannot be read: ${(err as Error).message}` };
  }
  return parseTableOptions(table, source);
}

/** The `read_csv` arguments the options add (after the file), in DuckDB's syntax; `rejects` names the table rows skipped go to. */
export function csvOptionSql(o: CsvOptions, rejects: string | null): string {
  const parts: string[] = [];
  if (o.names) parts.push(`names=[${o.names.map(quoteLiteral).join(', ')}]`);
  if (o.types) parts.push(`types={${Object.entries(o.types).map(([c, t]) => `${quoteLiteral(c)}: ${quoteLiteral(t)}`).join(', ')}}`);
  for (const k of ['dateformat', 'timestampformat', 'decimal_separator', 'comment'] as const) if (o[k] !== undefined) parts.push(`${k}=${quoteLiteral(o[k])}`);
  if (o.nullstr) parts.push(`nullstr=[${o.nullstr.map(quoteLiteral).join(', ')}]`);
  if (o.skip !== undefined) parts.push(`skip=${o.skip}`);
  if (o.all_varchar) parts.push('all_varchar=true');
  if (o.ignore_errors) {
    parts.push('ignore_errors=true');
    if (rejects) parts.push(`store_rejects=true, rejects_table=${quoteLiteral(rejects)}, rejects_scan=${quoteLiteral(`${rejects}_scan`)}`);
  }
  return parts.map((p) => `, ${p}`).join('');
}

/** Reads the rows a read skipped (ignore_errors) from its rejects table, then drops it. */
export async function skippedRows(
  conn: { runAndReadAll(sql: string): Promise<{ getRowsJS(): unknown[][] }>; run(sql: string): Promise<unknown> },
  rejects: string,
): Promise<{ rows: number; lines: { line: number; message: string }[] }> {
  const t = quoteIdent(rejects);
  try {
    const count = Number((await conn.runAndReadAll(`SELECT count(DISTINCT line) FROM temp.${t}`)).getRowsJS()[0]?.[0] ?? 0);
    const lines = (await conn.runAndReadAll(`SELECT line, min(error_message) FROM temp.${t} GROUP BY line ORDER BY line LIMIT 20`))
      .getRowsJS()
      .map((r) => ({ line: Number(r[0]), message: String(r[1]).split('\n')[0]!.slice(0, 300) }));
    return { rows: count, lines };
  } finally {
    await conn.run(`DROP TABLE IF EXISTS temp.${t}`).catch(() => undefined);
    await conn.run(`DROP TABLE IF EXISTS temp.${quoteIdent(`${rejects}_scan`)}`).catch(() => undefined);
  }
}
