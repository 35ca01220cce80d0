import { readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DuckDBDataChunk, VARCHAR, BOOLEAN, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import { quoteIdent, quoteLiteral, type FileFingerprint, type FileKind } from '@flashduck/core';
import { loadArrow } from '@flashduck/core/duckdb';
import { widenTypes } from '@flashduck/schema';
import { canonicalKey, fitValue, jsonTypeOf, keyText, type Effect } from './effects.js';

/** A data file of the table being written. */
export interface TableFile {
  readonly path: string;
  readonly abs: string;
  readonly kind: FileKind;
  readonly fingerprint: FileFingerprint | null;
}

/** A file whose new content is ready in `tmp` (same folder), waiting to replace `file`. */
export interface RewrittenFile {
  readonly file: TableFile;
  readonly tmp: string;
}

export interface RewriteContext {
  readonly conn: DuckDBConnection;
  readonly workDir: string;
  readonly key: readonly string[];
  readonly effects: ReadonlyMap<string, Effect>;
  /** The table's current column types by lower-case name (from its snapshot), for typing new columns. */
  readonly tableTypes: ReadonlyMap<string, { name: string; type: string }>;
  /** Makes a temp name next to a file. */
  readonly tempFor: (abs: string) => Promise<string>;
}

const lower = (s: string) => s.toLowerCase();

function valueText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Columns (besides the key) that upserts set, with the type new values need. */
function upsertColumns(ctx: RewriteContext): { name: string; valueType: string }[] {
  const keySet = new Set(ctx.key.map(lower));
  const cols = new Map<string, { name: string; valueType: string }>();
  for (const e of ctx.effects.values()) {
    if (e.op !== 'upsert') continue;
    for (const [name, v] of Object.entries(e.row)) {
      if (keySet.has(lower(name))) continue;
      const prev = cols.get(lower(name));
      const t = jsonTypeOf(v);
      cols.set(lower(name), { name: prev?.name ?? name, valueType: prev ? widenTypes(prev.valueType, t).type : t });
    }
  }
  return [...cols.values()];
}

/**
 * Loads the batch's effects into a temp table `chg`: the canonical key, the operation, whether the
 * row starts fresh, each key value, and for each upsert column its value as text and whether it was given.
 */
async function loadChanges(ctx: RewriteContext, columns: readonly { name: string }[]): Promise<void> {
  const { conn, key, effects } = ctx;
  const defs = [
    '__k VARCHAR',
    '__op VARCHAR',
    '__fresh BOOLEAN',
    ...key.map((_, i) => `__key${i} VARCHAR`),
    ...columns.flatMap((_, i) => [`__v${i} VARCHAR`, `__has${i} BOOLEAN`]),
  ];
  await conn.run(`CREATE OR REPLACE TEMP TABLE chg (${defs.join(', ')})`);
  const types: DuckDBType[] = [VARCHAR, VARCHAR, BOOLEAN, ...key.map(() => VARCHAR), ...columns.flatMap(() => [VARCHAR, BOOLEAN])];
  const appender = await conn.createAppender('chg', null, 'temp');
  const all = [...effects.entries()];
  try {
    for (let start = 0; start < all.length; start += 2048) {
      const slice = all.slice(start, start + 2048);
      const chunk = DuckDBDataChunk.create(types, slice.length);
      const cols: (string | boolean | null)[][] = types.map(() => []);
      for (const [k, e] of slice) {
        const values = JSON.parse(k) as string[];
        const row = e.op === 'upsert' ? e.row : {};
        const byLower = new Map(Object.entries(row).map(([n, v]) => [lower(n), v]));
        const out: (string | boolean | null)[] = [k, e.op, e.op === 'upsert' && e.fresh, ...values];
        for (const c of columns) {
          const has = byLower.has(lower(c.name));
          out.push(has ? valueText(byLower.get(lower(c.name))) : null, has);
        }
        out.forEach((v, i) => cols[i]!.push(v));
      }
      cols.forEach((values, i) => chunk.setColumnValues(i, values));
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

/** A write that can never be applied as it is (retrying cannot help): dead-lettered at once with its reason. */
export class WriteRefusedError extends Error {}

function readerSql(kind: FileKind, link: string, dialect: { delim: string; quote: string } | null): string {
  const f = quoteLiteral(link);
  if (kind.format === 'parquet') return `read_parquet(${f})`;
  const d = dialect ? `, delim=${quoteLiteral(dialect.delim)}, quote=${quoteLiteral(dialect.quote)}` : '';
  return `read_csv(${f}, header=true, all_varchar=true${d})`;
}

async function sniffDialect(conn: DuckDBConnection, kind: FileKind, link: string): Promise<{ delim: string; quote: string }> {
  const fallback = { delim: kind.format === 'tsv' ? '\t' : ',', quote: '"' };
  try {
    const r = await conn.runAndReadAll(`SELECT Delimiter, Quote FROM sniff_csv(${quoteLiteral(link)})`);
    const [delim, quote] = (r.getRowsJS()[0] ?? []) as [string?, string?];
    // sniff_csv reports "(empty)" when the file has no quoted field.
    const one = (v: string | undefined, d: string) => (v && v.length === 1 ? v : d);
    return { delim: one(delim, fallback.delim), quote: one(quote, fallback.quote) };
  } catch {
    return fallback;
  }
}

/**
 * Rewrites one CSV/TSV or Parquet file with DuckDB. CSV cells are read and written as text, so every
 * untouched cell keeps its exact text; Parquet keeps its column types (widened where a value needs it).
 * Returns the keys this file now holds for upserts, or null when nothing in the file changes.
 */
async function rewriteWithDuckDB(
  ctx: RewriteContext,
  file: TableFile,
  columns: readonly { name: string; valueType: string }[],
  placed: ReadonlySet<string>,
  index: number,
  owned: boolean,
): Promise<{ tmp: string; holds: string[] } | null> {
  const { conn, key } = ctx;
  const link = path.join(ctx.workDir, `src${index}${file.kind.extension}`);
  let fileColumns: { name: string; type: string }[] = [];
  const arrow = file.kind.format === 'arrow';
  const csv = file.kind.format !== 'parquet' && !arrow;
  // DuckDB reads through a plain-named link: glob characters or quotes in the real name do not matter.
  if (file.fingerprint && !arrow) await symlink(file.abs, link);
  const dialect = csv && file.fingerprint ? await sniffDialect(conn, file.kind, link) : null;
  if (file.fingerprint && arrow) {
    await conn.run('DROP TABLE IF EXISTS temp.src');
    await loadArrow(conn, await readFile(file.abs), 'src', new Map(), { temporary: true });
    fileColumns = (await conn.runAndReadAll('DESCRIBE src')).getRowsJS().map((r) => ({ name: String(r[0]), type: String(r[1]) }));
  } else if (file.fingerprint) {
    await conn.run(`CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM ${readerSql(file.kind, link, dialect)}`);
    fileColumns = (await conn.runAndReadAll('DESCRIBE src')).getRowsJS().map((r) => ({ name: String(r[0]), type: String(r[1]) }));
  } else {
    // The applier's own file does not exist yet: start from no rows.
    await conn.run(`CREATE OR REPLACE TEMP TABLE src AS SELECT 1 AS __none WHERE false`);
  }
  const have = new Map(fileColumns.map((c) => [lower(c.name), c]));
  const keyCols = key.map((k) => have.get(lower(k)));
  const match = keyCols.every(Boolean)
    ? keyCols.map((c, i) => `s.${quoteIdent(c!.name)} = TRY_CAST(m.__key${i} AS ${c!.type})`).join(' AND ')
    : 'false';

  // Keys of this batch present in this file; an upsert already held by an earlier file is removed here.
  const found = keyCols.every(Boolean)
    ? (await conn.runAndReadAll(`SELECT DISTINCT m.__k FROM src s JOIN chg m ON ${match}`)).getRowsJS().map((r) => String(r[0]))
    : [];
  if (arrow) {
    // Read, never rewritten: a write that would change its rows fails with the reason; new keys go elsewhere.
    if (found.length) {
      throw new WriteRefusedError(
        `${file.path} is an Arrow IPC file, which FlashDuck reads but does not rewrite, and ${found.length} key(s) of this write are in it; change those rows at their source, or keep them in a CSV, JSON or Parquet file of the table`,
      );
    }
    return null;
  }
  const holds = found.filter((k) => ctx.effects.get(k)?.op === 'upsert' && !placed.has(k));
  const fresh = owned ? [...ctx.effects].filter(([k, e]) => e.op === 'upsert' && !placed.has(k) && !found.includes(k)).map(([k]) => k) : [];
  if (found.length === 0 && fresh.length === 0) return null;

  await conn.run('CREATE OR REPLACE TEMP TABLE here (__k VARCHAR, __eff VARCHAR)');
  const rows = found.map((k) => [k, ctx.effects.get(k)!.op === 'upsert' && !placed.has(k) ? 'upsert' : 'delete']);
  if (rows.length) {
    const app = await conn.createAppender('here', null, 'temp');
    for (const [k, eff] of rows) {
      app.appendVarchar(k!);
      app.appendVarchar(eff!);
      app.endRow();
    }
    app.flushSync();
    app.closeSync();
  }

  const byLowerUpsert = new Map(columns.map((c, i) => [lower(c.name), { ...c, i }]));
  const typeOf = (c: { name: string; type: string }) => {
    const u = byLowerUpsert.get(lower(c.name));
    if (csv || !u) return c.type;
    const w = widenTypes(c.type, u.valueType);
    return w.kind === 'text' ? c.type : w.type;
  };
  const keyLower = new Set(key.map(lower));
  const list: string[] = [];
  for (const c of fileColumns) {
    const id = quoteIdent(c.name);
    const target = typeOf(c);
    const u = byLowerUpsert.get(lower(c.name));
    const keep = target === c.type ? `s.${id}` : `CAST(s.${id} AS ${target})`;
    if (keyLower.has(lower(c.name))) list.push(`${keep} AS ${id}`);
    else if (u) list.push(`CASE WHEN m.__eff = 'upsert' AND m.__has${u.i} THEN CAST(m.__v${u.i} AS ${target}) WHEN m.__eff = 'upsert' AND m.__fresh THEN NULL ELSE ${keep} END AS ${id}`);
    else list.push(`CASE WHEN m.__eff = 'upsert' AND m.__fresh THEN NULL ELSE ${keep} END AS ${id}`);
  }
  // Columns the file lacks but an upsert held here sets: added (NULL for the file's other rows).
  const heldHere = new Set(holds);
  const added = columns.filter(
    (c) => !have.has(lower(c.name)) && [...heldHere].some((k) => { const e = ctx.effects.get(k); return e?.op === 'upsert' && Object.keys(e.row).some((n) => lower(n) === lower(c.name)); }),
  );
  const newType = (c: { name: string; valueType: string }) => (csv ? 'VARCHAR' : (ctx.tableTypes.get(lower(c.name))?.type ?? (c.valueType === 'NULL' ? 'VARCHAR' : c.valueType)));
  for (const c of added) {
    const u = byLowerUpsert.get(lower(c.name))!;
    list.push(`CASE WHEN m.__eff = 'upsert' AND m.__has${u.i} THEN CAST(m.__v${u.i} AS ${newType(c)}) END AS ${quoteIdent(c.name)}`);
  }
  // Rows keep their order (a join does not preserve it): __ord is the row's position in the file.
  let select = list.length
    ? `SELECT ${list.join(', ')}, s.rowid AS __ord FROM src s LEFT JOIN (SELECT c.*, h.__eff FROM chg c JOIN here h USING (__k)) m ON ${match} WHERE m.__eff IS NULL OR m.__eff = 'upsert'`
    : '';

  if (owned && fresh.length) {
    // New keys: rows of the applier's own file, typed like the table where it has the column.
    await conn.run('CREATE OR REPLACE TEMP TABLE fresh_keys (__k VARCHAR)');
    const app = await conn.createAppender('fresh_keys', null, 'temp');
    for (const k of fresh) {
      app.appendVarchar(k);
      app.endRow();
    }
    app.flushSync();
    app.closeSync();
    const typeFor = (name: string, valueType: string) => {
      const own = have.get(lower(name));
      if (own) return typeOf(own);
      const t = ctx.tableTypes.get(lower(name))?.type;
      if (!t) return valueType === 'NULL' ? 'VARCHAR' : valueType;
      const w = widenTypes(t, valueType);
      return w.kind === 'text' ? t : w.type;
    };
    const keyList = key.map((k, i) => {
      const own = have.get(lower(k));
      const valueTypes = [...ctx.effects.values()].filter((e) => e.op === 'upsert').map((e) => jsonTypeOf((e as { row: Record<string, unknown> }).row[k]));
      const vt = valueTypes.reduce((a, b) => widenTypes(a, b).type, 'NULL');
      return `CAST(m.__key${i} AS ${own ? own.type : typeFor(k, vt)}) AS ${quoteIdent(own?.name ?? ctx.tableTypes.get(lower(k))?.name ?? k)}`;
    });
    const valueList = columns.map((c, i) => `CAST(m.__v${i} AS ${typeFor(c.name, c.valueType)}) AS ${quoteIdent(have.get(lower(c.name))?.name ?? c.name)}`);
    // New rows go after the existing ones, in the order of their keys' first appearance in the batch.
    const freshSelect = `SELECT ${[...keyList, ...valueList].join(', ')}, 4611686018427387904 + f.rowid AS __ord FROM chg m JOIN fresh_keys f USING (__k)`;
    select = select ? `SELECT * FROM (${select}) UNION ALL BY NAME ${freshSelect}` : freshSelect;
  }
  select = `SELECT * EXCLUDE (__ord) FROM (${select}) ORDER BY __ord`;

  const tmp = await ctx.tempFor(file.abs);
  let opts: string;
  if (csv) {
    const d = dialect ?? { delim: file.kind.format === 'tsv' ? '\t' : ',', quote: '"' };
    opts = `FORMAT csv, HEADER true, DELIMITER ${quoteLiteral(d.delim)}, QUOTE ${quoteLiteral(d.quote)}`;
    if (file.kind.compression) opts += `, COMPRESSION ${quoteLiteral(file.kind.compression)}`;
  } else {
    opts = 'FORMAT parquet, COMPRESSION zstd';
  }
  await conn.run(`COPY (${select}) TO ${quoteLiteral(tmp)} (${opts})`);
  return { tmp, holds: [...holds, ...fresh] };
}

/**
 * Rewrites one JSON (array) or NDJSON file in JavaScript: objects keep their own fields and order,
 * matched rows are merged or removed, nothing else changes.
 */
async function rewriteJson(
  ctx: RewriteContext,
  file: TableFile,
  placed: ReadonlySet<string>,
): Promise<{ tmp: string; holds: string[] } | null> {
  if (file.kind.compression === 'zstd') throw new WriteRefusedError(`${file.path}: zstd-compressed JSON cannot be rewritten here; decompress it or write to another file of the table`);
  const raw = await readFile(file.abs);
  const text = (file.kind.compression === 'gzip' ? gunzipSync(raw) : raw).toString('utf8').replace(/^\uFEFF/, '');
  const isArray = /^\s*\[/.test(text);
  let objects: Record<string, unknown>[];
  // NDJSON lines that no write touches are written back byte for byte.
  const lines = isArray ? [] : text.split('\n').filter((l) => l.trim());
  try {
    objects = isArray ? (JSON.parse(text) as Record<string, unknown>[]) : lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch (err) {
    throw new Error(`${file.path} is not valid JSON, so it cannot be rewritten: ${(err as Error).message}`);
  }
  const holds = new Set<string>();
  let changed = false;
  const out: Record<string, unknown>[] = [];
  const verbatim = new Map<Record<string, unknown>, string>();
  objects.forEach((obj, i) => {
    if (!isArray) verbatim.set(obj, lines[i]!);
  });
  for (const obj of objects) {
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
      out.push(obj);
      continue;
    }
    const names = new Map(Object.keys(obj).map((n) => [lower(n), n]));
    const keyNames = ctx.key.map((k) => names.get(lower(k)));
    if (keyNames.some((n) => n === undefined || obj[n] === null || obj[n] === undefined)) {
      out.push(obj);
      continue;
    }
    const k = JSON.stringify(keyNames.map((n) => keyText(obj[n!])));
    const e = ctx.effects.get(k);
    if (!e) {
      out.push(obj);
      continue;
    }
    changed = true;
    if (e.op === 'delete' || placed.has(k) || holds.has(k)) continue;
    const base: Record<string, unknown> = e.fresh ? Object.fromEntries(keyNames.map((n) => [n!, obj[n!]])) : { ...obj };
    for (const [name, v] of Object.entries(e.row)) {
      const own = names.get(lower(name));
      if (ctx.key.some((kk) => lower(kk) === lower(name))) continue;
      base[own ?? name] = v;
    }
    out.push(base);
    holds.add(k);
  }
  if (!changed) return null;
  const body = isArray
    ? `[\n${out.map((o) => JSON.stringify(o)).join(',\n')}\n]\n`
    : out.map((o) => `${verbatim.get(o) ?? JSON.stringify(o)}\n`).join('');
  const tmp = await ctx.tempFor(file.abs);
  await writeFile(tmp, file.kind.compression === 'gzip' ? gzipSync(body) : body);
  return { tmp, holds: [...holds] };
}

/**
 * Applies the batch's effects to the table's files: each file that holds an affected key is rewritten
 * in its own format; a key ends up in exactly one place (the first file, in path order, that has it);
 * keys no file has go to the applier's own Parquet file. Returns the files to replace.
 */
export async function rewriteFiles(ctx: RewriteContext, files: readonly TableFile[], owned: TableFile): Promise<RewrittenFile[]> {
  const columns = upsertColumns(ctx);
  await loadChanges(ctx, columns);
  const placed = new Set<string>();
  const out: RewrittenFile[] = [];
  const ordered = [...files.filter((f) => f.abs !== owned.abs), owned];
  let index = 0;
  for (const f of ordered) {
    index += 1;
    const isOwned = f.abs === owned.abs;
    const r = f.kind.format === 'json' || f.kind.format === 'ndjson'
      ? await rewriteJson(ctx, f, placed)
      : await rewriteWithDuckDB(ctx, f, columns, placed, index, isOwned);
    if (!r) continue;
    for (const k of r.holds) placed.add(k);
    out.push({ file: f, tmp: r.tmp });
  }
  return out;
}

/** Checks every upsert value against the table's column types; the first value that cannot be stored, per write. */
export function checkTypes(
  rows: readonly Record<string, unknown>[],
  tableTypes: ReadonlyMap<string, { name: string; type: string }>,
): string | null {
  for (let i = 0; i < rows.length; i++) {
    for (const [name, v] of Object.entries(rows[i]!)) {
      const col = tableTypes.get(lower(name));
      if (!col) continue;
      const fit = fitValue(col.name, col.type, v);
      if ('error' in fit) return `rows[${i}]: ${fit.error}`;
    }
  }
  return null;
}

export { canonicalKey };
