import { quoteIdent, quoteLiteral } from '@flashduck/core';
import type { ServedTable } from '../snapshots/generation.js';
import { OID } from './types.js';

/**
 * What PostgreSQL clients read to browse a database — psql's `\dt` and `\d`, JDBC's DatabaseMetaData, drivers'
 * type lookups, BI tools' schema trees — answered for FlashDuck's tables. DuckDB's own `pg_catalog` has its own
 * object ids and type names, so a schema of look-alike tables (`fdpg`) is built in a generation the first time a
 * PostgreSQL client needs it, and catalog references in that client's SQL are pointed at it. The tables appear
 * as ordinary tables (relkind `r`) in schema `public`, which also holds a view of each table so that
 * `public.<table>` works.
 */
export const SHIM_SCHEMA = 'fdpg';
const PUBLIC_OID = 2200;
const CATALOG_OID = 11;
const INFORMATION_SCHEMA_OID = 13183;
const FIRST_TABLE_OID = 16384;
const OWNER_OID = 10;

/** PostgreSQL's name, length and category of each type FlashDuck answers with, and its array type. */
const TYPES: readonly { oid: number; name: string; len: number; category: string; array: number; sql: string }[] = [
  { oid: OID.bool, name: 'bool', len: 1, category: 'B', array: 1000, sql: 'boolean' },
  { oid: OID.bytea, name: 'bytea', len: -1, category: 'U', array: 1001, sql: 'bytea' },
  { oid: OID.int8, name: 'int8', len: 8, category: 'N', array: 1016, sql: 'bigint' },
  { oid: OID.int2, name: 'int2', len: 2, category: 'N', array: 1005, sql: 'smallint' },
  { oid: OID.int4, name: 'int4', len: 4, category: 'N', array: 1007, sql: 'integer' },
  { oid: OID.text, name: 'text', len: -1, category: 'S', array: 1009, sql: 'text' },
  { oid: OID.json, name: 'json', len: -1, category: 'U', array: 199, sql: 'json' },
  { oid: OID.float4, name: 'float4', len: 4, category: 'N', array: 1021, sql: 'real' },
  { oid: OID.float8, name: 'float8', len: 8, category: 'N', array: 1022, sql: 'double precision' },
  { oid: OID.varchar, name: 'varchar', len: -1, category: 'S', array: 1015, sql: 'character varying' },
  { oid: OID.date, name: 'date', len: 4, category: 'D', array: 1182, sql: 'date' },
  { oid: OID.time, name: 'time', len: 8, category: 'D', array: 1183, sql: 'time without time zone' },
  { oid: OID.timestamp, name: 'timestamp', len: 8, category: 'D', array: 1115, sql: 'timestamp without time zone' },
  { oid: OID.timestamptz, name: 'timestamptz', len: 8, category: 'D', array: 1185, sql: 'timestamp with time zone' },
  { oid: OID.interval, name: 'interval', len: 16, category: 'T', array: 1187, sql: 'interval' },
  { oid: OID.timetz, name: 'timetz', len: 12, category: 'D', array: 1270, sql: 'time with time zone' },
  { oid: OID.numeric, name: 'numeric', len: -1, category: 'N', array: 1231, sql: 'numeric' },
  { oid: OID.uuid, name: 'uuid', len: 16, category: 'U', array: 2951, sql: 'uuid' },
  { oid: 19, name: 'name', len: 64, category: 'S', array: 1003, sql: 'name' },
  { oid: 26, name: 'oid', len: 4, category: 'N', array: 1028, sql: 'oid' },
  { oid: 18, name: 'char', len: 1, category: 'Z', array: 1002, sql: '"char"' },
];

/** Catalog relations the shim provides. */
const SHIM_RELATIONS = [
  'pg_namespace', 'pg_class', 'pg_attribute', 'pg_type', 'pg_am', 'pg_attrdef', 'pg_description', 'pg_index', 'pg_constraint', 'pg_inherits',
  'pg_database', 'pg_roles', 'pg_user', 'pg_settings', 'pg_tablespace', 'pg_proc', 'pg_collation', 'pg_trigger', 'pg_rewrite', 'pg_policy',
  'pg_statistic_ext', 'pg_publication', 'pg_publication_rel', 'pg_partitioned_table', 'pg_foreign_table', 'pg_sequence', 'pg_depend', 'pg_tables', 'pg_views', 'pg_matviews', 'pg_enum', 'pg_range', 'pg_extension',
];
/** Catalog functions the shim provides (as macros). */
const SHIM_FUNCTIONS = [
  'pg_get_userbyid', 'pg_table_is_visible', 'pg_type_is_visible', 'pg_function_is_visible', 'format_type', 'obj_description', 'col_description', 'shobj_description',
  'pg_get_expr', 'pg_encoding_to_char', 'has_table_privilege', 'has_schema_privilege', 'has_database_privilege', 'pg_get_indexdef', 'pg_get_constraintdef',
  'pg_get_viewdef', 'pg_relation_size', 'pg_total_relation_size', 'pg_get_partkeydef', 'pg_is_in_recovery',
];
/** Catalog relations and functions the shim provides (references to others keep DuckDB's). */
export const SHIM_NAMES: ReadonlySet<string> = new Set([...SHIM_RELATIONS, ...SHIM_FUNCTIONS]);
/** An unqualified shim relation after FROM, JOIN or a comma. */
const BARE_RELATION = new RegExp(`\\b(FROM|JOIN|,)\\s+(${SHIM_RELATIONS.join('|')})\\b`, 'gi');

/** One column of a served table as a PostgreSQL client sees it. */
export interface CatalogColumn {
  readonly name: string;
  readonly oid: number;
  readonly len: number;
  readonly typmod: number;
}

const values = (rows: readonly (readonly unknown[])[]) =>
  rows
    .map((r) => `(${r.map((v) => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : typeof v === 'boolean' ? String(v) : quoteLiteral(String(v)))).join(', ')})`)
    .join(', ');

/** A table of typed columns holding `rows` (none: an empty table of those columns). */
function table(name: string, columns: readonly [string, string][], rows: readonly (readonly unknown[])[] = []): string {
  const cols = columns.map(([n, t]) => `${quoteIdent(n)} ${t}`).join(', ');
  const create = `CREATE TABLE ${SHIM_SCHEMA}.${name} (${cols})`;
  return rows.length ? `${create};\nINSERT INTO ${SHIM_SCHEMA}.${name} VALUES ${values(rows)}` : create;
}

/** The statements that build the shim for a generation's tables (each a column list of PostgreSQL types). */
export function catalogSql(tables: ReadonlyMap<string, { meta: ServedTable['meta']; columns: readonly CatalogColumn[] }>): string[] {
  const names = [...tables.keys()].sort();
  const oidOf = new Map(names.map((n, i) => [n, FIRST_TABLE_OID + i]));
  const out: string[] = [`CREATE SCHEMA ${SHIM_SCHEMA}`, `CREATE SCHEMA IF NOT EXISTS public`];
  for (const n of names) out.push(`CREATE OR REPLACE VIEW public.${quoteIdent(n)} AS SELECT * FROM main.${quoteIdent(n)}`);
  out.push(
    table('pg_namespace', [['oid', 'BIGINT'], ['nspname', 'VARCHAR'], ['nspowner', 'BIGINT'], ['nspacl', 'VARCHAR']], [
      [CATALOG_OID, 'pg_catalog', OWNER_OID, null],
      [PUBLIC_OID, 'public', OWNER_OID, null],
      [INFORMATION_SCHEMA_OID, 'information_schema', OWNER_OID, null],
    ]),
  );
  out.push(
    table(
      'pg_class',
      [
        ['oid', 'BIGINT'], ['relname', 'VARCHAR'], ['relnamespace', 'BIGINT'], ['reltype', 'BIGINT'], ['reloftype', 'BIGINT'], ['relowner', 'BIGINT'], ['relam', 'BIGINT'],
        ['relfilenode', 'BIGINT'], ['reltablespace', 'BIGINT'], ['relpages', 'INTEGER'], ['reltuples', 'REAL'], ['relallvisible', 'INTEGER'], ['reltoastrelid', 'BIGINT'],
        ['relhasindex', 'BOOLEAN'], ['relisshared', 'BOOLEAN'], ['relpersistence', 'VARCHAR'], ['relkind', 'VARCHAR'], ['relnatts', 'SMALLINT'], ['relchecks', 'SMALLINT'],
        ['relhasrules', 'BOOLEAN'], ['relhastriggers', 'BOOLEAN'], ['relhassubclass', 'BOOLEAN'], ['relrowsecurity', 'BOOLEAN'], ['relforcerowsecurity', 'BOOLEAN'],
        ['relispopulated', 'BOOLEAN'], ['relreplident', 'VARCHAR'], ['relispartition', 'BOOLEAN'], ['relrewrite', 'BIGINT'], ['relacl', 'VARCHAR[]'], ['reloptions', 'VARCHAR[]'], ['relpartbound', 'VARCHAR'],
      ],
      names.map((n) => [oidOf.get(n)!, n, PUBLIC_OID, 0, 0, OWNER_OID, 2, 0, 0, 0, tables.get(n)!.meta.rows, 0, 0, false, false, 'p', 'r', tables.get(n)!.columns.length, 0, false, false, false, false, false, true, 'd', false, 0, null, null, null]),
    ),
  );
  const attributes = names.flatMap((n) =>
    tables.get(n)!.columns.map((c, i) => [oidOf.get(n)!, c.name, c.oid, -1, c.len, i + 1, 0, -1, c.typmod, c.len > 0, 'i', 'p', '', false, false, false, '', '', false, true, 0, c.oid === OID.text || c.oid === OID.varchar ? 100 : 0]),
  );
  out.push(
    table(
      'pg_attribute',
      [
        ['attrelid', 'BIGINT'], ['attname', 'VARCHAR'], ['atttypid', 'BIGINT'], ['attstattarget', 'INTEGER'], ['attlen', 'SMALLINT'], ['attnum', 'SMALLINT'], ['attndims', 'INTEGER'],
        ['attcacheoff', 'INTEGER'], ['atttypmod', 'INTEGER'], ['attbyval', 'BOOLEAN'], ['attalign', 'VARCHAR'], ['attstorage', 'VARCHAR'], ['attcompression', 'VARCHAR'],
        ['attnotnull', 'BOOLEAN'], ['atthasdef', 'BOOLEAN'], ['atthasmissing', 'BOOLEAN'], ['attidentity', 'VARCHAR'], ['attgenerated', 'VARCHAR'], ['attisdropped', 'BOOLEAN'],
        ['attislocal', 'BOOLEAN'], ['attinhcount', 'INTEGER'], ['attcollation', 'BIGINT'],
      ],
      attributes,
    ),
  );
  const typeRows = TYPES.flatMap((t) => [
    [t.oid, t.name, CATALOG_OID, OWNER_OID, t.len, t.len > 0 && t.len <= 8, 'b', t.category, false, true, ',', 0, 0, t.array, 0, -1, 0, 0, false, t.category === 'S' ? 100 : 0],
    [t.array, `_${t.name}`, CATALOG_OID, OWNER_OID, -1, false, 'b', 'A', false, true, ',', 0, t.oid, 0, 0, -1, 0, 0, false, t.category === 'S' ? 100 : 0],
  ]);
  out.push(
    table(
      'pg_type',
      [
        ['oid', 'BIGINT'], ['typname', 'VARCHAR'], ['typnamespace', 'BIGINT'], ['typowner', 'BIGINT'], ['typlen', 'SMALLINT'], ['typbyval', 'BOOLEAN'], ['typtype', 'VARCHAR'],
        ['typcategory', 'VARCHAR'], ['typispreferred', 'BOOLEAN'], ['typisdefined', 'BOOLEAN'], ['typdelim', 'VARCHAR'], ['typrelid', 'BIGINT'], ['typelem', 'BIGINT'],
        ['typarray', 'BIGINT'], ['typbasetype', 'BIGINT'], ['typtypmod', 'INTEGER'], ['typndims', 'INTEGER'], ['typinput', 'BIGINT'], ['typnotnull', 'BOOLEAN'], ['typcollation', 'BIGINT'],
      ],
      typeRows,
    ),
  );
  out.push(table('pg_am', [['oid', 'BIGINT'], ['amname', 'VARCHAR'], ['amtype', 'VARCHAR']], [[2, 'heap', 't']]));
  out.push(table('pg_attrdef', [['oid', 'BIGINT'], ['adrelid', 'BIGINT'], ['adnum', 'SMALLINT'], ['adbin', 'VARCHAR']]));
  out.push(table('pg_description', [['objoid', 'BIGINT'], ['classoid', 'BIGINT'], ['objsubid', 'INTEGER'], ['description', 'VARCHAR']]));
  out.push(table('pg_index', [['indexrelid', 'BIGINT'], ['indrelid', 'BIGINT'], ['indnatts', 'SMALLINT'], ['indisunique', 'BOOLEAN'], ['indisprimary', 'BOOLEAN'], ['indisclustered', 'BOOLEAN'], ['indisvalid', 'BOOLEAN'], ['indkey', 'VARCHAR'], ['indisreplident', 'BOOLEAN'], ['indexprs', 'VARCHAR'], ['indpred', 'VARCHAR']]));
  out.push(table('pg_constraint', [['oid', 'BIGINT'], ['conname', 'VARCHAR'], ['connamespace', 'BIGINT'], ['contype', 'VARCHAR'], ['conrelid', 'BIGINT'], ['confrelid', 'BIGINT'], ['conindid', 'BIGINT'], ['conkey', 'SMALLINT[]'], ['confkey', 'SMALLINT[]'], ['conparentid', 'BIGINT'], ['condeferrable', 'BOOLEAN'], ['condeferred', 'BOOLEAN'], ['convalidated', 'BOOLEAN'], ['conislocal', 'BOOLEAN']]));
  out.push(table('pg_inherits', [['inhrelid', 'BIGINT'], ['inhparent', 'BIGINT'], ['inhseqno', 'INTEGER'], ['inhdetachpending', 'BOOLEAN']]));
  out.push(table('pg_policy', [['oid', 'BIGINT'], ['polname', 'VARCHAR'], ['polrelid', 'BIGINT'], ['polcmd', 'VARCHAR'], ['polpermissive', 'BOOLEAN'], ['polroles', 'BIGINT[]'], ['polqual', 'VARCHAR'], ['polwithcheck', 'VARCHAR']]));
  for (const empty of ['pg_trigger', 'pg_rewrite', 'pg_statistic_ext', 'pg_publication', 'pg_publication_rel', 'pg_partitioned_table', 'pg_foreign_table', 'pg_sequence', 'pg_depend', 'pg_enum', 'pg_range', 'pg_proc', 'pg_collation', 'pg_extension']) {
    out.push(table(empty, [['oid', 'BIGINT'], ['tgrelid', 'BIGINT'], ['polrelid', 'BIGINT'], ['stxrelid', 'BIGINT'], ['prrelid', 'BIGINT'], ['partrelid', 'BIGINT'], ['ftrelid', 'BIGINT'], ['seqrelid', 'BIGINT'], ['objid', 'BIGINT'], ['refobjid', 'BIGINT'], ['enumtypid', 'BIGINT'], ['rngtypid', 'BIGINT'], ['proname', 'VARCHAR'], ['pronamespace', 'BIGINT'], ['collname', 'VARCHAR'], ['extname', 'VARCHAR'], ['pubname', 'VARCHAR'], ['ev_class', 'BIGINT'], ['tgname', 'VARCHAR'], ['polname', 'VARCHAR']]));
  }
  out.push(
    table('pg_database', [['oid', 'BIGINT'], ['datname', 'VARCHAR'], ['datdba', 'BIGINT'], ['encoding', 'INTEGER'], ['datcollate', 'VARCHAR'], ['datctype', 'VARCHAR'], ['datistemplate', 'BOOLEAN'], ['datallowconn', 'BOOLEAN'], ['datconnlimit', 'INTEGER'], ['dattablespace', 'BIGINT'], ['datacl', 'VARCHAR[]']], [
      [16383, 'flashduck', OWNER_OID, 6, 'C', 'C', false, true, -1, 1663, null],
    ]),
  );
  out.push(table('pg_roles', [['oid', 'BIGINT'], ['rolname', 'VARCHAR'], ['rolsuper', 'BOOLEAN'], ['rolinherit', 'BOOLEAN'], ['rolcreaterole', 'BOOLEAN'], ['rolcreatedb', 'BOOLEAN'], ['rolcanlogin', 'BOOLEAN'], ['rolreplication', 'BOOLEAN'], ['rolconnlimit', 'INTEGER'], ['rolvaliduntil', 'VARCHAR'], ['rolbypassrls', 'BOOLEAN']], [[OWNER_OID, 'flashduck', false, true, false, false, true, false, -1, null, false]]));
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_user AS SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb, rolsuper AS usesuper FROM ${SHIM_SCHEMA}.pg_roles`);
  out.push(table('pg_tablespace', [['oid', 'BIGINT'], ['spcname', 'VARCHAR'], ['spcowner', 'BIGINT']], [[1663, 'pg_default', OWNER_OID]]));
  out.push(table('pg_settings', [['name', 'VARCHAR'], ['setting', 'VARCHAR'], ['unit', 'VARCHAR'], ['category', 'VARCHAR'], ['short_desc', 'VARCHAR'], ['context', 'VARCHAR'], ['vartype', 'VARCHAR'], ['source', 'VARCHAR']], [['server_version', '16.0', null, 'Preset Options', 'FlashDuck', 'internal', 'string', 'default']]));
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_tables AS SELECT n.nspname AS schemaname, c.relname AS tablename, 'flashduck' AS tableowner, NULL::VARCHAR AS tablespace, false AS hasindexes, false AS hasrules, false AS hastriggers, false AS rowsecurity FROM ${SHIM_SCHEMA}.pg_class c JOIN ${SHIM_SCHEMA}.pg_namespace n ON n.oid = c.relnamespace`);
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_views AS SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS viewname, NULL::VARCHAR AS viewowner, NULL::VARCHAR AS definition WHERE false`);
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_matviews AS SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS matviewname WHERE false`);
  const formatType = TYPES.map((t) => `WHEN ${t.oid} THEN '${t.sql.replace(/'/g, "''")}' WHEN ${t.array} THEN '${t.sql.replace(/'/g, "''")}[]'`).join(' ');
  out.push(
    `CREATE MACRO ${SHIM_SCHEMA}.format_type(t, m) AS CASE WHEN t = ${OID.numeric} AND m >= 4 THEN 'numeric(' || ((m - 4) >> 16) || ',' || ((m - 4) & 65535) || ')' ELSE CASE t ${formatType} ELSE 'text' END END`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_userbyid(id) AS 'flashduck'`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_table_is_visible(id) AS true`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_type_is_visible(id) AS true`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_function_is_visible(id) AS true`,
    `CREATE MACRO ${SHIM_SCHEMA}.obj_description(o, c := NULL) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.col_description(o, n) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.shobj_description(o, c) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_expr(e, r, p := NULL) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_indexdef(i, c := NULL, p := NULL) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_constraintdef(i, p := NULL) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_viewdef(i, p := NULL) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_partkeydef(i) AS NULL::VARCHAR`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_encoding_to_char(e) AS 'UTF8'`,
    `CREATE MACRO ${SHIM_SCHEMA}.has_table_privilege(a, b, c := NULL) AS true`,
    `CREATE MACRO ${SHIM_SCHEMA}.has_schema_privilege(a, b, c := NULL) AS true`,
    `CREATE MACRO ${SHIM_SCHEMA}.has_database_privilege(a, b, c := NULL) AS true`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_relation_size(r) AS 0::BIGINT`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_total_relation_size(r) AS 0::BIGINT`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_is_in_recovery() AS false`,
  );
  return out;
}

/** Functions whose PostgreSQL answer differs from DuckDB's, as literals. */
const LITERAL_FUNCTIONS: readonly [RegExp, string][] = [
  [/\b(?:pg_catalog\.)?version\s*\(\s*\)/gi, "'PostgreSQL 16.0 (FlashDuck) on DuckDB'"],
  [/\b(?:pg_catalog\.)?current_schema\s*\(\s*\)/gi, "'public'"],
  [/\b(?:pg_catalog\.)?current_schemas\s*\(\s*(true|false)\s*\)/gi, "['pg_catalog', 'public']"],
  [/\b(?:pg_catalog\.)?current_database\s*\(\s*\)/gi, "'flashduck'"],
  [/\b(?:pg_catalog\.)?pg_backend_pid\s*\(\s*\)/gi, '0'],
];

/**
 * A PostgreSQL client's SQL with catalog references pointed at the shim, PostgreSQL-only syntax DuckDB does not
 * parse rewritten (`OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`, casts to oid/name/regclass/regtype/
 * "char"), and functions whose answer differs from DuckDB's replaced by PostgreSQL's. `null` when `sql` names
 * none of them (it runs as sent).
 */
export function rewriteForPostgresClients(sql: string): string | null {
  let s = sql;
  for (const [re, literal] of LITERAL_FUNCTIONS) s = s.replace(re, literal);
  const catalog = /\bpg_catalog\b|\b(pg_class|pg_namespace|pg_attribute|pg_type|pg_database|pg_roles|pg_user|pg_settings|pg_tables)\b/i.test(s);
  if (!catalog) return s === sql ? null : s;
  return s
    .replace(/OPERATOR\s*\(\s*pg_catalog\.([^)\s]+)\s*\)/gi, '$1')
    .replace(/\s+COLLATE\s+(pg_catalog\.)?"?default"?/gi, '')
    .replace(/::\s*(pg_catalog\.)?(regclass|regtype|regproc|regnamespace|oid)\b/gi, '::BIGINT')
    .replace(/::\s*(pg_catalog\.)?(name|text|"char"|char)\b/gi, '::VARCHAR')
    .replace(/\bpg_catalog\.(\w+)/gi, (_m, name: string) => (SHIM_NAMES.has(name.toLowerCase()) ? `${SHIM_SCHEMA}.${name.toLowerCase()}` : name))
    .replace(BARE_RELATION, (_m, kw: string, name: string) => `${kw} ${SHIM_SCHEMA}.${name.toLowerCase()}`);
}
