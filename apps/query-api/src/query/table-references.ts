import type { DuckDBConnection } from '@duckdb/node-api';
import { quoteLiteral } from '@flashduck/core';
import { closeDuckDB, openDuckDB, type DuckDBHandle } from '@flashduck/core/duckdb';
import { SERVED_CATALOG } from '../snapshots/generation.js';

/**
 * What a statement can read, as DuckDB's own parser sees it: the tables it names, or `dynamic` when it can
 * reach tables the text does not name — a table function (`query_table('wea' || 'ther')`, `duckdb_tables()`),
 * a catalog view (`information_schema.tables`), `SHOW TABLES`, or a statement the parser cannot serialize.
 */
export interface TableReferences {
  readonly tables: readonly string[];
  readonly dynamic: boolean;
}

const DYNAMIC: TableReferences = { tables: [], dynamic: true };

type Node = Record<string, unknown>;

/** Reads the table references out of `json_serialize_sql` output (exported for tests). */
export function referencesOf(serialized: string): TableReferences {
  let parsed: Node;
  try {
    parsed = JSON.parse(serialized) as Node;
  } catch {
    return DYNAMIC;
  }
  if (parsed.error !== false) return DYNAMIC;
  const ctes = new Set<string>();
  const refs: { table: string; schema: string; catalog: string }[] = [];
  let dynamic = false;
  const walk = (v: unknown): void => {
    if (dynamic || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    const n = v as Node;
    if (n.type === 'TABLE_FUNCTION') dynamic = true;
    else if (n.type === 'SHOW_REF' && !n.query) dynamic = true; // SHOW TABLES, SHOW ALL TABLES
    else if (n.type === 'BASE_TABLE') {
      refs.push({ table: String(n.table_name).toLowerCase(), schema: String(n.schema_name ?? '').toLowerCase(), catalog: String(n.catalog_name ?? '').toLowerCase() });
    }
    const cteMap = n.cte_map as { map?: { key?: unknown }[] } | undefined;
    for (const e of cteMap?.map ?? []) ctes.add(String(e.key).toLowerCase());
    for (const x of Object.values(n)) walk(x);
  };
  walk(parsed.statements);
  if (dynamic) return DYNAMIC;
  const tables = new Set<string>();
  for (const r of refs) {
    if (!r.schema && !r.catalog && ctes.has(r.table)) continue;
    // A served table is `t`, `main.t`, `memory.t` or `memory.main.t`; anything else is a catalog view or unknown.
    // (`memory.t` parses as schema `memory`; DuckDB resolves it as the catalog.)
    if (r.schema && r.schema !== 'main' && !(r.schema === SERVED_CATALOG && !r.catalog)) return DYNAMIC;
    if (r.catalog && r.catalog !== SERVED_CATALOG) return DYNAMIC;
    tables.add(r.table);
  }
  return { tables: [...tables].sort(), dynamic: false };
}

/**
 * The version of every table a statement may read: the tables it names, or every served table when it is
 * dynamic or names a table not served. A result cache keyed on this can never answer from a version the
 * statement did not read.
 */
export function versionsRead(refs: TableReferences, versions: ReadonlyMap<string, number>): Record<string, number> {
  const all = () => Object.fromEntries([...versions].sort(([a], [b]) => a.localeCompare(b)));
  if (refs.dynamic) return all();
  const out: Record<string, number> = {};
  for (const t of refs.tables) {
    const v = versions.get(t);
    if (v === undefined) return all();
    out[t] = v;
  }
  return out;
}

/** Memo size: one entry per distinct (normalized) query text. */
const MAX_ENTRIES = 10_000;

/**
 * Finds the tables statements read with DuckDB's parser (`json_serialize_sql`, ~1 ms) in a DuckDB of its own
 * that never runs the statement, remembering the answer per query text, so a repeated query costs a map lookup.
 */
export class TableReferenceParser {
  private readonly memo = new Map<string, TableReferences>();
  private db: Promise<DuckDBHandle> | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  /** The references of a query text already parsed, or undefined. */
  known(normalizedSql: string): TableReferences | undefined {
    return this.memo.get(normalizedSql);
  }

  /** The references of a query text (`normalizedSql` is its memo key). */
  async parse(sql: string, normalizedSql: string): Promise<TableReferences> {
    const hit = this.memo.get(normalizedSql);
    if (hit) return hit;
    this.db ??= openDuckDB({ threads: 1 }).then(async (db) => {
      await db.conn.run('SET enable_external_access=false');
      await db.conn.run('SET lock_configuration=true');
      return db;
    });
    let conn: DuckDBConnection;
    try {
      ({ conn } = await this.db);
    } catch {
      this.db = null;
      return DYNAMIC; // no parser: every table's version keys the answer
    }
    // One connection, one statement at a time.
    const run = this.queue.then(() => conn.runAndReadAll(`SELECT json_serialize_sql(${quoteLiteral(sql)})`));
    this.queue = run.catch(() => undefined);
    let refs: TableReferences;
    try {
      refs = referencesOf(String((await run).getRowsJS()[0]?.[0] ?? ''));
    } catch {
      refs = DYNAMIC;
    }
    if (this.memo.size >= MAX_ENTRIES) this.memo.delete(this.memo.keys().next().value!);
    this.memo.set(normalizedSql, refs);
    return refs;
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    if (db) closeDuckDB(await db);
  }
}
