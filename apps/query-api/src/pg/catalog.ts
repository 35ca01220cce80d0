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
/** PostgreSQL's own oids of the catalogs clients name in `'pg_class'::regclass`. */
const CATALOG_OIDS: readonly [string, number][] = [
  ['pg_class', 1259], ['pg_namespace', 2615], ['pg_type', 1247], ['pg_attribute', 1249], ['pg_proc', 1255], ['pg_constraint', 2606], ['pg_index', 2610], ['pg_database', 1262],
  ['pg_description', 2609], ['pg_trigger', 2620], ['pg_rewrite', 2618], ['pg_am', 2601], ['pg_attrdef', 2604], ['pg_collation', 3456], ['pg_extension', 3079], ['pg_authid', 1260],
];
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

/** Catalogs of objects FlashDuck never has (triggers, rules, sequences, enums, …), with PostgreSQL's columns. */
const EMPTY_CATALOGS: readonly [string, readonly string[]][] = [
  ['pg_trigger', ['oid', 'tgrelid', 'tgparentid', 'tgname', 'tgfoid', 'tgtype', 'tgenabled', 'tgisinternal', 'tgconstrrelid', 'tgconstrindid', 'tgconstraint', 'tgdeferrable', 'tginitdeferred', 'tgnargs', 'tgattr', 'tgargs', 'tgqual', 'tgoldtable', 'tgnewtable']],
  ['pg_rewrite', ['oid', 'rulename', 'ev_class', 'ev_type', 'ev_enabled', 'is_instead', 'ev_qual', 'ev_action']],
  ['pg_statistic_ext', ['oid', 'stxrelid', 'stxname', 'stxnamespace', 'stxowner', 'stxstattarget', 'stxkeys', 'stxkind', 'stxexprs']],
  ['pg_publication', ['oid', 'pubname', 'pubowner', 'puballtables', 'pubinsert', 'pubupdate', 'pubdelete', 'pubtruncate', 'pubviaroot']],
  ['pg_publication_rel', ['oid', 'prpubid', 'prrelid', 'prqual', 'prattrs']],
  ['pg_partitioned_table', ['partrelid', 'partstrat', 'partnatts', 'partdefid', 'partattrs', 'partclass', 'partcollation', 'partexprs']],
  ['pg_foreign_table', ['ftrelid', 'ftserver', 'ftoptions']],
  ['pg_sequence', ['seqrelid', 'seqtypid', 'seqstart', 'seqincrement', 'seqmax', 'seqmin', 'seqcache', 'seqcycle']],
  ['pg_depend', ['classid', 'objid', 'objsubid', 'refclassid', 'refobjid', 'refobjsubid', 'deptype']],
  ['pg_enum', ['oid', 'enumtypid', 'enumsortorder', 'enumlabel']],
  ['pg_range', ['rngtypid', 'rngsubtype', 'rngmultitypid', 'rngcollation', 'rngsubopc', 'rngcanonical', 'rngsubdiff']],
  ['pg_proc', ['oid', 'proname', 'pronamespace', 'proowner', 'prolang', 'procost', 'prorows', 'provariadic', 'prosupport', 'prokind', 'prosecdef', 'proleakproof', 'proisstrict', 'proretset', 'provolatile', 'proparallel', 'pronargs', 'pronargdefaults', 'prorettype', 'proargtypes', 'proallargtypes', 'proargmodes', 'proargnames', 'prosrc', 'probin', 'proconfig', 'proacl']],
  ['pg_collation', ['oid', 'collname', 'collnamespace', 'collowner', 'collprovider', 'collisdeterministic', 'collencoding', 'collcollate', 'collctype']],
  ['pg_extension', ['oid', 'extname', 'extowner', 'extnamespace', 'extrelocatable', 'extversion', 'extconfig', 'extcondition']],
  ['pg_auth_members', ['oid', 'roleid', 'member', 'grantor', 'admin_option', 'inherit_option', 'set_option']],
  ['pg_publication_namespace', ['oid', 'pnpubid', 'pnnspid']],
];

/** The DuckDB type of a catalog column, from PostgreSQL's naming habits: ids and counts are numbers, flags booleans. */
function columnType(name: string): string {
  if (/^(oid|\w*(relid|typid|oid|id|namespace|owner|class|type|lang|server|subtype|collation|nargs|nargdefaults|natts|strat|subid|stattarget|encoding)|seq(start|increment|max|min|cache)|tgtype|enumsortorder|procost|prorows|provariadic|prorettype|rngsubopc|rngcanonical|rngsubdiff|prosupport|tgfoid|tgconstrrelid|tgconstrindid|tgconstraint|partdefid|ev_class|prpubid|refclassid|refobjid|objid)$/.test(name))
    return name === 'enumsortorder' || name === 'procost' || name === 'prorows' ? 'REAL' : 'BIGINT';
  if (/^(tgisinternal|tgdeferrable|tginitdeferred|is_instead|puballtables|pubinsert|pubupdate|pubdelete|pubtruncate|pubviaroot|seqcycle|prosecdef|proleakproof|proisstrict|proretset|collisdeterministic|extrelocatable|\w+_option)$/.test(name)) return 'BOOLEAN';
  if (/^(proargnames|proargmodes|proconfig|proacl|ftoptions|extconfig|extcondition|stxkind)$/.test(name)) return 'VARCHAR[]';
  if (/^(stxkeys|tgattr|partattrs|prattrs)$/.test(name)) return 'SMALLINT[]';
  if (/^(proargtypes|proallargtypes|partclass|partcollation|extconfig)$/.test(name)) return 'BIGINT[]';
  return 'VARCHAR';
}

/** Catalog relations the shim provides: those with rows or views, and the empty catalogs. */
const SHIM_RELATIONS = [
  'pg_namespace', 'pg_class', 'pg_attribute', 'pg_type', 'pg_am', 'pg_attrdef', 'pg_description', 'pg_index', 'pg_constraint', 'pg_inherits',
  'pg_database', 'pg_roles', 'pg_user', 'pg_settings', 'pg_tablespace', 'pg_policy', 'pg_tables', 'pg_views', 'pg_matviews',
  ...EMPTY_CATALOGS.map(([name]) => name),
];
/** PostgreSQL functions DuckDB has no function of that name for: the shim's answer them, called bare or qualified. */
const MISSING_FUNCTIONS = ['quote_ident', 'array_lower', 'array_upper'];
const BARE_MISSING_FUNCTION = new RegExp(`(?<![.\\w"])(${MISSING_FUNCTIONS.join('|')})\\s*\\(`, 'gi');
/** Catalog functions the shim provides (as macros). */
const SHIM_FUNCTIONS = [
  'pg_get_userbyid', 'pg_table_is_visible', 'pg_type_is_visible', 'pg_function_is_visible', 'format_type', 'obj_description', 'col_description', 'shobj_description',
  'pg_get_expr', 'pg_encoding_to_char', 'has_table_privilege', 'has_schema_privilege', 'has_database_privilege', 'pg_get_indexdef', 'pg_get_constraintdef',
  'pg_get_viewdef', 'pg_relation_size', 'pg_total_relation_size', 'pg_table_size', 'pg_indexes_size', 'pg_get_partkeydef', 'pg_is_in_recovery', 'pg_relation_is_publishable', 'pg_get_keywords', 'pg_get_serial_sequence',
  'pg_get_statisticsobjdef_columns', 'pg_get_statisticsobjdef', 'pg_get_function_result', 'pg_get_function_arguments', 'pg_get_function_identity_arguments', 'pg_get_triggerdef', 'pg_get_ruledef',
  ...MISSING_FUNCTIONS,
];
/** `information_schema` views the shim provides, each as `fdpg.is_<name>` (references to others keep DuckDB's). */
const INFORMATION_SCHEMA_VIEWS: ReadonlySet<string> = new Set([
  'tables', 'columns', 'schemata', 'views', 'table_constraints', 'key_column_usage', 'referential_constraints', 'constraint_column_usage', 'routines', 'parameters',
]);
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
    tables.get(n)!.columns.map((c, i) => [oidOf.get(n)!, c.name, c.oid, -1, c.len, i + 1, 0, -1, c.typmod, c.len > 0, 'i', c.len > 0 ? 'p' : 'x', '', false, false, false, '', '', false, true, 0, c.oid === OID.text || c.oid === OID.varchar ? 100 : 0, null, null, null]),
  );
  out.push(
    table(
      'pg_attribute',
      [
        ['attrelid', 'BIGINT'], ['attname', 'VARCHAR'], ['atttypid', 'BIGINT'], ['attstattarget', 'INTEGER'], ['attlen', 'SMALLINT'], ['attnum', 'SMALLINT'], ['attndims', 'INTEGER'],
        ['attcacheoff', 'INTEGER'], ['atttypmod', 'INTEGER'], ['attbyval', 'BOOLEAN'], ['attalign', 'VARCHAR'], ['attstorage', 'VARCHAR'], ['attcompression', 'VARCHAR'],
        ['attnotnull', 'BOOLEAN'], ['atthasdef', 'BOOLEAN'], ['atthasmissing', 'BOOLEAN'], ['attidentity', 'VARCHAR'], ['attgenerated', 'VARCHAR'], ['attisdropped', 'BOOLEAN'],
        ['attislocal', 'BOOLEAN'], ['attinhcount', 'INTEGER'], ['attcollation', 'BIGINT'], ['attacl', 'VARCHAR[]'], ['attoptions', 'VARCHAR[]'], ['attfdwoptions', 'VARCHAR[]'],
      ],
      attributes,
    ),
  );
  const typeRows = TYPES.flatMap((t) => [
    [t.oid, t.name, CATALOG_OID, OWNER_OID, t.len, t.len > 0 && t.len <= 8, 'b', t.category, false, true, ',', 0, 0, t.array, 0, -1, 0, 0, false, t.category === 'S' ? 100 : 0, null, null, 0, 0, 0, 0, 0, 0, 0, t.len === 8 ? 'd' : 'i', t.len === -1 ? 'x' : 'p', null],
    [t.array, `_${t.name}`, CATALOG_OID, OWNER_OID, -1, false, 'b', 'A', false, true, ',', 0, t.oid, 0, 0, -1, 0, 0, false, t.category === 'S' ? 100 : 0, null, null, 0, 0, 0, 0, 0, 0, 0, 'i', 'x', null],
  ]);
  out.push(
    table(
      'pg_type',
      [
        ['oid', 'BIGINT'], ['typname', 'VARCHAR'], ['typnamespace', 'BIGINT'], ['typowner', 'BIGINT'], ['typlen', 'SMALLINT'], ['typbyval', 'BOOLEAN'], ['typtype', 'VARCHAR'],
        ['typcategory', 'VARCHAR'], ['typispreferred', 'BOOLEAN'], ['typisdefined', 'BOOLEAN'], ['typdelim', 'VARCHAR'], ['typrelid', 'BIGINT'], ['typelem', 'BIGINT'],
        ['typarray', 'BIGINT'], ['typbasetype', 'BIGINT'], ['typtypmod', 'INTEGER'], ['typndims', 'INTEGER'], ['typinput', 'BIGINT'], ['typnotnull', 'BOOLEAN'], ['typcollation', 'BIGINT'],
        ['typdefault', 'VARCHAR'], ['typdefaultbin', 'VARCHAR'], ['typoutput', 'BIGINT'], ['typreceive', 'BIGINT'], ['typsend', 'BIGINT'], ['typmodin', 'BIGINT'], ['typmodout', 'BIGINT'],
        ['typanalyze', 'BIGINT'], ['typsubscript', 'BIGINT'], ['typalign', 'VARCHAR'], ['typstorage', 'VARCHAR'], ['typacl', 'VARCHAR[]'],
      ],
      typeRows,
    ),
  );
  out.push(table('pg_am', [['oid', 'BIGINT'], ['amname', 'VARCHAR'], ['amtype', 'VARCHAR']], [[2, 'heap', 't']]));
  out.push(table('pg_attrdef', [['oid', 'BIGINT'], ['adrelid', 'BIGINT'], ['adnum', 'SMALLINT'], ['adbin', 'VARCHAR']]));
  out.push(table('pg_description', [['objoid', 'BIGINT'], ['classoid', 'BIGINT'], ['objsubid', 'INTEGER'], ['description', 'VARCHAR']]));
  out.push(
    table('pg_index', [
      ['indexrelid', 'BIGINT'], ['indrelid', 'BIGINT'], ['indnatts', 'SMALLINT'], ['indnkeyatts', 'SMALLINT'], ['indisunique', 'BOOLEAN'], ['indnullsnotdistinct', 'BOOLEAN'], ['indisprimary', 'BOOLEAN'],
      ['indisexclusion', 'BOOLEAN'], ['indimmediate', 'BOOLEAN'], ['indisclustered', 'BOOLEAN'], ['indisvalid', 'BOOLEAN'], ['indcheckxmin', 'BOOLEAN'], ['indisready', 'BOOLEAN'], ['indislive', 'BOOLEAN'],
      ['indisreplident', 'BOOLEAN'], ['indkey', 'SMALLINT[]'], ['indcollation', 'BIGINT[]'], ['indclass', 'BIGINT[]'], ['indoption', 'SMALLINT[]'], ['indexprs', 'VARCHAR'], ['indpred', 'VARCHAR'],
    ]),
  );
  out.push(
    table('pg_constraint', [
      ['oid', 'BIGINT'], ['conname', 'VARCHAR'], ['connamespace', 'BIGINT'], ['contype', 'VARCHAR'], ['condeferrable', 'BOOLEAN'], ['condeferred', 'BOOLEAN'], ['convalidated', 'BOOLEAN'],
      ['conrelid', 'BIGINT'], ['contypid', 'BIGINT'], ['conindid', 'BIGINT'], ['conparentid', 'BIGINT'], ['confrelid', 'BIGINT'], ['confupdtype', 'VARCHAR'], ['confdeltype', 'VARCHAR'],
      ['confmatchtype', 'VARCHAR'], ['conislocal', 'BOOLEAN'], ['coninhcount', 'INTEGER'], ['connoinherit', 'BOOLEAN'], ['conkey', 'SMALLINT[]'], ['confkey', 'SMALLINT[]'],
      ['conpfeqop', 'BIGINT[]'], ['conppeqop', 'BIGINT[]'], ['conffeqop', 'BIGINT[]'], ['confdelsetcols', 'SMALLINT[]'], ['conexclop', 'BIGINT[]'], ['conbin', 'VARCHAR'],
    ]),
  );
  out.push(table('pg_inherits', [['inhrelid', 'BIGINT'], ['inhparent', 'BIGINT'], ['inhseqno', 'INTEGER'], ['inhdetachpending', 'BOOLEAN']]));
  out.push(table('pg_policy', [['oid', 'BIGINT'], ['polname', 'VARCHAR'], ['polrelid', 'BIGINT'], ['polcmd', 'VARCHAR'], ['polpermissive', 'BOOLEAN'], ['polroles', 'BIGINT[]'], ['polqual', 'VARCHAR'], ['polwithcheck', 'VARCHAR']]));
  for (const [name, columns] of EMPTY_CATALOGS) out.push(table(name, columns.map((c) => [c, columnType(c)])));
  out.push(
    table(
      'pg_database',
      [
        ['oid', 'BIGINT'], ['datname', 'VARCHAR'], ['datdba', 'BIGINT'], ['encoding', 'INTEGER'], ['datlocprovider', 'VARCHAR'], ['datcollate', 'VARCHAR'], ['datctype', 'VARCHAR'],
        ['daticulocale', 'VARCHAR'], ['daticurules', 'VARCHAR'], ['datcollversion', 'VARCHAR'], ['datistemplate', 'BOOLEAN'], ['datallowconn', 'BOOLEAN'], ['datconnlimit', 'INTEGER'],
        ['dattablespace', 'BIGINT'], ['datacl', 'VARCHAR[]'],
      ],
      [[16383, 'flashduck', OWNER_OID, 6, 'c', 'C', 'C', null, null, null, false, true, -1, 1663, null]],
    ),
  );
  out.push(table('pg_roles', [['oid', 'BIGINT'], ['rolname', 'VARCHAR'], ['rolsuper', 'BOOLEAN'], ['rolinherit', 'BOOLEAN'], ['rolcreaterole', 'BOOLEAN'], ['rolcreatedb', 'BOOLEAN'], ['rolcanlogin', 'BOOLEAN'], ['rolreplication', 'BOOLEAN'], ['rolconnlimit', 'INTEGER'], ['rolvaliduntil', 'VARCHAR'], ['rolbypassrls', 'BOOLEAN']], [[OWNER_OID, 'flashduck', false, true, false, false, true, false, -1, null, false]]));
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_user AS SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb, rolsuper AS usesuper FROM ${SHIM_SCHEMA}.pg_roles`);
  out.push(table('pg_tablespace', [['oid', 'BIGINT'], ['spcname', 'VARCHAR'], ['spcowner', 'BIGINT']], [[1663, 'pg_default', OWNER_OID]]));
  out.push(table('pg_settings', [['name', 'VARCHAR'], ['setting', 'VARCHAR'], ['unit', 'VARCHAR'], ['category', 'VARCHAR'], ['short_desc', 'VARCHAR'], ['context', 'VARCHAR'], ['vartype', 'VARCHAR'], ['source', 'VARCHAR']], [
    ['server_version', '16.0', null, 'Preset Options', 'FlashDuck', 'internal', 'string', 'default'],
    ['server_version_num', '160000', null, 'Preset Options', 'FlashDuck', 'internal', 'integer', 'default'],
    ['server_encoding', 'UTF8', null, 'Preset Options', 'Server encoding', 'internal', 'string', 'default'],
    ['max_index_keys', '32', null, 'Preset Options', 'Maximum number of index keys', 'internal', 'integer', 'default'],
    ['max_identifier_length', '63', null, 'Preset Options', 'Maximum identifier length', 'internal', 'integer', 'default'],
    ['integer_datetimes', 'on', null, 'Preset Options', 'Datetimes are integer based', 'internal', 'bool', 'default'],
    ['block_size', '8192', null, 'Preset Options', 'Size of a disk block', 'internal', 'integer', 'default'],
    ['standard_conforming_strings', 'on', null, 'Client Connection Defaults', 'Backslashes are literal', 'user', 'bool', 'default'],
    ['search_path', 'public', null, 'Client Connection Defaults', 'Schema search order', 'user', 'string', 'default'],
  ]));
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_tables AS SELECT n.nspname AS schemaname, c.relname AS tablename, 'flashduck' AS tableowner, NULL::VARCHAR AS tablespace, false AS hasindexes, false AS hasrules, false AS hastriggers, false AS rowsecurity FROM ${SHIM_SCHEMA}.pg_class c JOIN ${SHIM_SCHEMA}.pg_namespace n ON n.oid = c.relnamespace`);
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_views AS SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS viewname, NULL::VARCHAR AS viewowner, NULL::VARCHAR AS definition WHERE false`);
  out.push(`CREATE VIEW ${SHIM_SCHEMA}.pg_matviews AS SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS matviewname WHERE false`);
  const catalogOids = CATALOG_OIDS.map(([name, oid]) => `WHEN '${name}' THEN ${oid}`).join(' ');
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
    `CREATE MACRO ${SHIM_SCHEMA}.pg_table_size(r) AS 0::BIGINT`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_indexes_size(r) AS 0::BIGINT`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_is_in_recovery() AS false`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_relation_is_publishable(r) AS false`,
    `CREATE MACRO ${SHIM_SCHEMA}.regclass_oid(n) AS COALESCE((SELECT oid FROM ${SHIM_SCHEMA}.pg_class WHERE relname = regexp_replace(n, '^public\\.', '')), CASE regexp_replace(n, '^pg_catalog\\.', '') ${catalogOids} END)`,
    `CREATE MACRO ${SHIM_SCHEMA}.version() AS 'PostgreSQL 16.0 (FlashDuck) on DuckDB'`,
    `CREATE MACRO ${SHIM_SCHEMA}.current_schema() AS 'public'`,
    `CREATE MACRO ${SHIM_SCHEMA}.current_schemas(implicit) AS CASE WHEN implicit THEN ['pg_catalog', 'public'] ELSE ['public'] END`,
    `CREATE MACRO ${SHIM_SCHEMA}.current_database() AS 'flashduck'`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_backend_pid() AS 0`,
    `CREATE MACRO ${SHIM_SCHEMA}.session_user() AS 'flashduck'`,
    `CREATE MACRO ${SHIM_SCHEMA}.current_user() AS 'flashduck'`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_keywords() AS TABLE SELECT keyword_name AS word, CASE keyword_category WHEN 'reserved' THEN 'R' WHEN 'unreserved' THEN 'U' WHEN 'column_name' THEN 'C' ELSE 'T' END AS catcode, keyword_category AS catdesc FROM duckdb_keywords()`,
    `CREATE MACRO ${SHIM_SCHEMA}.pg_get_serial_sequence(t, c) AS NULL::VARCHAR`,
    ...['pg_get_statisticsobjdef_columns', 'pg_get_statisticsobjdef', 'pg_get_function_result', 'pg_get_function_arguments', 'pg_get_function_identity_arguments', 'pg_get_triggerdef', 'pg_get_ruledef'].map(
      (f) => `CREATE MACRO ${SHIM_SCHEMA}.${f}(o, p := NULL) AS NULL::VARCHAR`,
    ),
    `CREATE MACRO ${SHIM_SCHEMA}.quote_ident(s) AS CASE WHEN regexp_full_match(s, '[a-z_][a-z0-9_$]*') THEN s ELSE '"' || replace(s, '"', '""') || '"' END`,
    `CREATE MACRO ${SHIM_SCHEMA}.array_lower(a, d) AS CASE WHEN len(a) > 0 THEN 1 END`,
    `CREATE MACRO ${SHIM_SCHEMA}.array_upper(a, d) AS CASE WHEN len(a) > 0 THEN len(a) END`,
  );
  out.push(...informationSchemaSql());
  return out;
}

/**
 * `information_schema` as PostgreSQL answers it (schema `public`, tables as `BASE TABLE`, SQL type names and
 * precisions), over the look-alike catalog: tools that browse through it (Grafana's query builder, SQLAlchemy's
 * fallbacks, hand-written scripts) see what pg_catalog shows.
 */
function informationSchemaSql(): string[] {
  const s = SHIM_SCHEMA;
  const none = (name: string, columns: readonly string[]) =>
    `CREATE VIEW ${s}.is_${name} AS SELECT ${columns.map((c) => `NULL::VARCHAR AS ${c}`).join(', ')} WHERE false`;
  const constraintColumns = ['constraint_catalog', 'constraint_schema', 'constraint_name', 'table_catalog', 'table_schema', 'table_name'];
  return [
    `CREATE VIEW ${s}.is_schemata AS SELECT 'flashduck' AS catalog_name, nspname AS schema_name, 'flashduck' AS schema_owner, NULL::VARCHAR AS default_character_set_catalog, NULL::VARCHAR AS default_character_set_schema, NULL::VARCHAR AS default_character_set_name, NULL::VARCHAR AS sql_path FROM ${s}.pg_namespace`,
    `CREATE VIEW ${s}.is_tables AS SELECT 'flashduck' AS table_catalog, n.nspname AS table_schema, c.relname AS table_name, 'BASE TABLE' AS table_type, NULL::VARCHAR AS self_referencing_column_name, NULL::VARCHAR AS reference_generation, NULL::VARCHAR AS user_defined_type_catalog, NULL::VARCHAR AS user_defined_type_schema, NULL::VARCHAR AS user_defined_type_name, 'NO' AS is_insertable_into, 'NO' AS is_typed, NULL::VARCHAR AS commit_action FROM ${s}.pg_class c JOIN ${s}.pg_namespace n ON n.oid = c.relnamespace`,
    `CREATE VIEW ${s}.is_columns AS SELECT 'flashduck' AS table_catalog, n.nspname AS table_schema, c.relname AS table_name, a.attname AS column_name, a.attnum::INTEGER AS ordinal_position,
       NULL::VARCHAR AS column_default, CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END AS is_nullable,
       CASE WHEN t.typcategory = 'A' THEN 'ARRAY' ELSE ${s}.format_type(a.atttypid, -1) END AS data_type,
       NULL::INTEGER AS character_maximum_length, CASE WHEN t.typcategory = 'S' THEN 1073741824 END AS character_octet_length,
       CASE a.atttypid WHEN ${OID.int2} THEN 16 WHEN ${OID.int4} THEN 32 WHEN ${OID.int8} THEN 64 WHEN ${OID.float4} THEN 24 WHEN ${OID.float8} THEN 53
         WHEN ${OID.numeric} THEN CASE WHEN a.atttypmod >= 4 THEN (a.atttypmod - 4) >> 16 END END::INTEGER AS numeric_precision,
       CASE WHEN a.atttypid IN (${OID.int2}, ${OID.int4}, ${OID.int8}, ${OID.float4}, ${OID.float8}) THEN 2 WHEN a.atttypid = ${OID.numeric} THEN 10 END::INTEGER AS numeric_precision_radix,
       CASE WHEN a.atttypid IN (${OID.int2}, ${OID.int4}, ${OID.int8}) THEN 0 WHEN a.atttypid = ${OID.numeric} AND a.atttypmod >= 4 THEN (a.atttypmod - 4) & 65535 END::INTEGER AS numeric_scale,
       CASE WHEN a.atttypid IN (${OID.date}) THEN 0 WHEN a.atttypid IN (${OID.time}, ${OID.timetz}, ${OID.timestamp}, ${OID.timestamptz}, ${OID.interval}) THEN 6 END::INTEGER AS datetime_precision,
       NULL::VARCHAR AS interval_type, NULL::INTEGER AS interval_precision,
       'flashduck' AS udt_catalog, 'pg_catalog' AS udt_schema, t.typname AS udt_name, a.attnum::VARCHAR AS dtd_identifier,
       'NO' AS is_self_referencing, 'NO' AS is_identity, NULL::VARCHAR AS identity_generation, 'NEVER' AS is_generated, NULL::VARCHAR AS generation_expression, 'NO' AS is_updatable
     FROM ${s}.pg_attribute a JOIN ${s}.pg_class c ON c.oid = a.attrelid JOIN ${s}.pg_namespace n ON n.oid = c.relnamespace JOIN ${s}.pg_type t ON t.oid = a.atttypid`,
    none('views', ['table_catalog', 'table_schema', 'table_name', 'view_definition', 'check_option', 'is_updatable', 'is_insertable_into', 'is_trigger_updatable', 'is_trigger_deletable', 'is_trigger_insertable_into']),
    none('table_constraints', [...constraintColumns, 'constraint_type', 'is_deferrable', 'initially_deferred', 'enforced', 'nulls_distinct']),
    none('key_column_usage', [...constraintColumns, 'column_name', 'ordinal_position', 'position_in_unique_constraint']),
    none('constraint_column_usage', ['table_catalog', 'table_schema', 'table_name', 'column_name', 'constraint_catalog', 'constraint_schema', 'constraint_name']),
    none('referential_constraints', ['constraint_catalog', 'constraint_schema', 'constraint_name', 'unique_constraint_catalog', 'unique_constraint_schema', 'unique_constraint_name', 'match_option', 'update_rule', 'delete_rule']),
    none('routines', ['specific_catalog', 'specific_schema', 'specific_name', 'routine_catalog', 'routine_schema', 'routine_name', 'routine_type', 'data_type']),
    none('parameters', ['specific_catalog', 'specific_schema', 'specific_name', 'ordinal_position', 'parameter_mode', 'parameter_name', 'data_type']),
  ];
}

/** Functions whose PostgreSQL answer differs from DuckDB's: the shim's macros answer them (named as PostgreSQL names them). */
const ANSWERED_FUNCTIONS: readonly [RegExp, string][] = [
  [/\b(?:pg_catalog\.)?version\s*\(\s*\)/gi, `${SHIM_SCHEMA}.version()`],
  [/\b(?:pg_catalog\.)?current_schema\s*\(\s*\)/gi, `${SHIM_SCHEMA}.current_schema()`],
  [/\b(?:pg_catalog\.)?current_schemas\s*\(\s*(true|false)\s*\)/gi, `${SHIM_SCHEMA}.current_schemas($1)`],
  [/\b(?:pg_catalog\.)?current_database\s*\(\s*\)/gi, `${SHIM_SCHEMA}.current_database()`],
  [/\b(?:pg_catalog\.)?pg_backend_pid\s*\(\s*\)/gi, `${SHIM_SCHEMA}.pg_backend_pid()`],
  [/\b(session_user|current_user)\b(?!\s*\()/gi, `${SHIM_SCHEMA}.$1()`],
  // DuckDB's json_object takes the same alternating keys and values.
  [/\b(?:pg_catalog\.)?jsonb?_build_object\s*\(/gi, 'json_object('],
];

/** `sql` with `rewrite` applied to what lies outside its string literals and quoted identifiers. */
function outsideQuotes(sql: string, rewrite: (code: string) => string): string {
  return sql
    .split(/('(?:[^']|'')*'|"(?:[^"]|"")*")/)
    .map((part, i) => (i % 2 === 1 ? part : rewrite(part)))
    .join('');
}

/**
 * A PostgreSQL client's SQL with catalog references pointed at the shim, PostgreSQL-only syntax DuckDB does not
 * take rewritten (`OPERATOR(pg_catalog.~)`, `x = ANY(array_column)`, `COLLATE pg_catalog.default`, casts to oid/name/regclass/regtype/
 * "char"), `information_schema` views pointed at the shim's, and functions whose answer differs from DuckDB's replaced by PostgreSQL's. `null` when `sql` names
 * none of them (it runs as sent).
 */
export function rewriteForPostgresClients(sql: string, settings: Readonly<Record<string, string>> = {}): string | null {
  // Function names are replaced in the SQL itself, never inside a string literal or a quoted name.
  let s = outsideQuotes(sql, (code) => {
    let c = code;
    for (const [re, replacement] of ANSWERED_FUNCTIONS) c = c.replace(re, replacement);
    return c.replace(BARE_MISSING_FUNCTION, (_m, name: string) => `${SHIM_SCHEMA}.${name.toLowerCase()}(`);
  });
  // The session's settings, as SHOW answers them.
  s = s.replace(/\b(?:pg_catalog\.)?current_setting\s*\(\s*'([^']*)'\s*(?:,\s*(?:true|false)\s*)?\)/gi, (_m, name: string) => quoteLiteral(settings[name.toLowerCase()] ?? ''));
  // PostgreSQL's array literals: '{a,b}'::text[] is a list.
  s = s.replace(/'\{([^}']*)\}'\s*::\s*(?:pg_catalog\.)?(\w+)\s*\[\]/gi, (_m, items: string, type: string) => {
    const numeric = /^(int[248]?|integer|bigint|smallint|oid|regclass|regtype)$/i.test(type);
    const values = items.split(',').map((v) => v.trim()).filter((v) => v !== '');
    return `[${values.map((v) => (numeric ? String(Number(v)) : quoteLiteral(v.replace(/^"(.*)"$/, '$1')))).join(', ')}]::${numeric ? 'BIGINT' : 'VARCHAR'}[]`;
  });
  const catalog = /\b(pg_catalog|information_schema)\b|\b(pg_class|pg_namespace|pg_attribute|pg_type|pg_database|pg_roles|pg_user|pg_settings|pg_tables)\b/i.test(s);
  if (!catalog) return s === sql ? null : s;
  return s
    .replace(/OPERATOR\s*\(\s*pg_catalog\.([^)\s]+)\s*\)/gi, '$1')
    // `col = ANY(array_col)`: DuckDB reads ANY as a subquery, which it cannot take in an outer join's condition.
    .replace(/('[^']*'|[\w.]+)\s*=\s*ANY\s*\(\s*([a-z_][\w]*\.[a-z_]\w*|[a-z_]\w*)\s*\)/gi, 'list_contains($2, $1)')
    // PostgreSQL's `~` finds a pattern anywhere; DuckDB's must match the whole string.
    .replace(/([\w.]+)\s*(!)?~(\*)?\s*('(?:[^']|'')*')/g, (_m, left: string, not: string | undefined, ci: string | undefined, pattern: string) => `${not ? 'NOT ' : ''}regexp_matches(${left}, ${pattern}${ci ? ", 'i'" : ''})`)
    .replace(/\s+COLLATE\s+(pg_catalog\.)?"?default"?/gi, '')
    // A relation's name cast to regclass is its oid (a catalog's as PostgreSQL numbers it).
    .replace(/('(?:[^']|'')*')\s*::\s*(?:pg_catalog\.)?regclass\b/gi, `${SHIM_SCHEMA}.regclass_oid($1)`)
    .replace(/::\s*(pg_catalog\.)?(regclass|regtype|regproc|regnamespace|oid)\b/gi, '::BIGINT')
    .replace(/::\s*(pg_catalog\.)?(name|text|"char"|char)\b/gi, '::VARCHAR')
    .replace(/\bpg_catalog\.(\w+)/gi, (_m, name: string) => (SHIM_NAMES.has(name.toLowerCase()) ? `${SHIM_SCHEMA}.${name.toLowerCase()}` : name))
    .replace(/\binformation_schema\.(\w+)/gi, (m, name: string) => (INFORMATION_SCHEMA_VIEWS.has(name.toLowerCase()) ? `${SHIM_SCHEMA}.is_${name.toLowerCase()}` : m))
    .replace(BARE_RELATION, (_m, kw: string, name: string) => `${kw} ${SHIM_SCHEMA}.${name.toLowerCase()}`);
}

/** Catalogs that hold nothing for FlashDuck's tables: no indexes, constraints, policies, triggers, publications, … */
const NOTHING_HELD: ReadonlySet<string> = new Set([
  ...EMPTY_CATALOGS.map(([name]) => name),
  ...['pg_attrdef', 'pg_description', 'pg_index', 'pg_constraint', 'pg_inherits', 'pg_policy', 'pg_statistic_ext_data', 'pg_event_trigger', 'pg_subscription', 'pg_shdescription'],
]);

/** `sql` with string literals emptied and each outermost parenthesized group replaced by `(#<n>)`, n its index in `groups`. */
function topLevel(sql: string): { top: string; groups: string[] } {
  let top = '';
  const groups: string[] = [];
  let depth = 0;
  let group = '';
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i]!;
    if (ch === "'") {
      const end = sql.indexOf("'", i + 1);
      const literal = end < 0 ? sql.slice(i) : sql.slice(i, end + 1);
      i = end < 0 ? sql.length : end;
      if (depth === 0) top += "''";
      else group += literal;
    } else if (ch === '(') {
      if (depth++ === 0) group = '';
      else group += ch;
    } else if (ch === ')') {
      if (--depth === 0) top += `(#${groups.push(group) - 1})`;
      else group += ch;
    } else if (depth === 0) top += ch;
    else group += ch;
  }
  return { top, groups };
}

const RELATION = String.raw`(?:\(#(\d+)\)|(?:(?:pg_catalog|fdpg)\.)?(\w+))`;
const FIRST_RELATION = new RegExp(`\\bFROM\\s+${RELATION}`, 'i');
const LISTED_RELATION = new RegExp(`^\\s*${RELATION}`);
const JOINED_RELATION = new RegExp(`\\b(LEFT\\s+(?:OUTER\\s+)?)?JOIN\\s+${RELATION}`, 'gi');

/**
 * Whether `sql` certainly answers no rows: in every branch of it, a catalog that holds nothing for FlashDuck
 * (or a subquery that answers nothing) is read first or inner joined, with no right or full join and no
 * aggregate that would answer one row of nothing. Such a query in a form DuckDB cannot take (PostgreSQL-only
 * array and function syntax in psql's `\d`, pgjdbc's key lookups) is answered with no rows; any other query
 * that fails reports its error.
 */
export function answersNothing(sql: string): boolean {
  const { top, groups } = topLevel(sql);
  const empty = (group: string | undefined, name: string | undefined) => (group !== undefined ? answersNothing(groups[Number(group)]!) : NOTHING_HELD.has(name!.toLowerCase()));
  return top.split(/\b(?:UNION|INTERSECT|EXCEPT)(?:\s+ALL)?\b/i).every((branch) => {
    if (/\b(RIGHT|FULL)\s+(OUTER\s+)?JOIN\b/i.test(branch) || /\b(count|sum|min|max|avg|bool_and|bool_or|every|array_agg|string_agg|json_agg)\s*\(/i.test(branch)) return false;
    const first = FIRST_RELATION.exec(branch);
    if (first && empty(first[1], first[2])) return true;
    // Relations listed with commas after FROM are inner joined.
    const list = /\bFROM\s+([\s\S]*?)(?:\bWHERE\b|\bGROUP\b|\bORDER\b|\bLIMIT\b|\bJOIN\b|$)/i.exec(branch)?.[1] ?? '';
    for (const item of list.split(',').slice(1)) {
      const m = LISTED_RELATION.exec(item);
      if (m && empty(m[1], m[2])) return true;
    }
    return [...branch.matchAll(JOINED_RELATION)].some((m) => !m[1] && empty(m[2], m[3]));
  });
}

/**
 * What PostgreSQL calls a result column DuckDB named after its expression: a function call by the function's
 * name (`count(*)` is `count`, `sum(amount)` is `sum`), a cast by the column cast, another expression
 * `?column?`. A name the statement spells out as a quoted alias stays as it is.
 */
export function pgColumnName(name: string, sql: string): string {
  if (sql.includes(`"${name}"`)) return name;
  if (name === 'count_star()') return 'count';
  const call = /^(?:(?:\w+|"[^"]*")\.)*(?:(\w+)|"([^"]*)")\(.*\)$/s.exec(name);
  const fn = call?.[1] ?? call?.[2];
  if (fn) return fn.toLowerCase() === 'cast' ? (/^CAST\((\w+) AS /i.exec(name)?.[1] ?? '?column?') : fn;
  if (/^\(.*\)$/s.test(name) || /^-?\d/.test(name) || /^'.*'$/s.test(name)) return '?column?';
  return name;
}
