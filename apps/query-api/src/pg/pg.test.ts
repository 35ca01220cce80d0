import { describe, expect, it } from 'vitest';
import { answersNothing, pgColumnName, rewriteForPostgresClients } from './catalog.js';
import { localStatement, splitStatements, DEFAULT_SETTINGS } from './statements.js';
import { numericBinary } from './types.js';

describe('PostgreSQL protocol pieces', () => {
  it('splits a simple query at semicolons outside quotes, dollar quotes and comments', () => {
    expect(splitStatements(`SELECT 'a;b'; SELECT "x;y" FROM t -- c;d\n; SELECT $$e;f$$; /* g;h */ SELECT 1;`)).toEqual([`SELECT 'a;b'`, `SELECT "x;y" FROM t -- c;d`, 'SELECT $$e;f$$', '/* g;h */ SELECT 1']);
    expect(splitStatements(`SELECT 'it''s; fine'`)).toEqual([`SELECT 'it''s; fine'`]);
    expect(splitStatements('')).toEqual(['']);
  });

  it('answers session statements itself and leaves data statements to DuckDB', () => {
    expect(localStatement('SET extra_float_digits = 3', DEFAULT_SETTINGS)).toEqual({ kind: 'set', name: 'extra_float_digits', value: '3', tag: 'SET' });
    expect(localStatement(`SET TIME ZONE 'Europe/Paris'`, DEFAULT_SETTINGS)).toMatchObject({ name: 'timezone', value: 'Europe/Paris' });
    expect(localStatement('show TimeZone;', DEFAULT_SETTINGS)).toEqual({ kind: 'show', name: 'timezone' });
    expect(localStatement('BEGIN READ ONLY', DEFAULT_SETTINGS)).toMatchObject({ kind: 'transaction', status: 'T' });
    expect(localStatement('SHOW TABLES', DEFAULT_SETTINGS)).toBeNull();
    expect(localStatement('SELECT 1', DEFAULT_SETTINGS)).toBeNull();
  });

  it('points catalog references at the look-alike and rewrites what DuckDB does not parse; other SQL is untouched', () => {
    expect(rewriteForPostgresClients('SELECT * FROM orders WHERE note = $1')).toBeNull();
    expect(rewriteForPostgresClients(`SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(orders)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid)`)).toBe(
      `SELECT c.oid FROM fdpg.pg_class c WHERE regexp_matches(c.relname, '^(orders)$') AND fdpg.pg_table_is_visible(c.oid)`,
    );
    // PostgreSQL's ~ finds a pattern anywhere; = ANY(array column) becomes list_contains.
    expect(rewriteForPostgresClients(`SELECT nspname FROM pg_namespace n WHERE n.nspname !~ '^pg_' AND 'd' = any(stxkind) AND a.attnum = ANY(ix.indkey)`)).toBe(
      `SELECT nspname FROM fdpg.pg_namespace n WHERE NOT regexp_matches(n.nspname, '^pg_') AND list_contains(stxkind, 'd') AND list_contains(ix.indkey, a.attnum)`,
    );
    expect(rewriteForPostgresClients(`SELECT table_name FROM information_schema.tables, information_schema.sql_features`)).toBe(`SELECT table_name FROM fdpg.is_tables, information_schema.sql_features`);
    // Functions DuckDB has no name for are the shim's, called bare or qualified.
    expect(rewriteForPostgresClients(`SELECT quote_ident(relname), json_build_object('a', 1) FROM t`)).toBe(`SELECT fdpg.quote_ident(relname), json_object('a', 1) FROM t`);
    expect(rewriteForPostgresClients('SELECT version(), current_schema(), session_user')).toBe(`SELECT fdpg.version(), fdpg.current_schema(), fdpg.session_user()`);
    // Never inside a string literal or a quoted name: data queries keep their values.
    expect(rewriteForPostgresClients(`SELECT "current_user", 'it''s current_user and version()' AS note FROM t WHERE x = 'quote_ident(a)'`)).toBeNull();
    // Settings as the session has them, and PostgreSQL's array literals.
    expect(rewriteForPostgresClients(`SELECT current_setting('search_path'), x = ANY('{int8,"a b"}'::text[]), '{1,2}'::int[]`, { search_path: 'public' })).toBe(
      `SELECT 'public', x = ANY(['int8', 'a b']::VARCHAR[]), [1, 2]::BIGINT[]`,
    );
    expect(rewriteForPostgresClients(`SELECT typname FROM pg_type WHERE oid = 'x'::regtype`)).toBe(`SELECT typname FROM fdpg.pg_type WHERE oid = 'x'::BIGINT`);
  });

  it('names result columns as PostgreSQL does', () => {
    expect(pgColumnName('count_star()', 'SELECT count(*) FROM t')).toBe('count');
    expect(pgColumnName('sum(amount)', 'SELECT sum(amount) FROM t')).toBe('sum');
    expect(pgColumnName('fdpg."version"()', 'SELECT version()')).toBe('version');
    expect(pgColumnName('CAST(amount AS INTEGER)', 'SELECT amount::int FROM t')).toBe('amount');
    expect(pgColumnName('(1 + 2)', 'SELECT 1 + 2')).toBe('?column?');
    expect(pgColumnName('1', 'SELECT 1')).toBe('?column?');
    expect(pgColumnName('amount', 'SELECT amount FROM t')).toBe('amount');
    // A quoted alias is the client's own name.
    expect(pgColumnName('sum(amount)', 'SELECT 1 AS "sum(amount)"')).toBe('sum(amount)');
  });

  it('answers no rows only for a query that reads first from a catalog holding nothing, inner joined, without aggregates', () => {
    expect(answersNothing(`SELECT pol.polname, (SELECT x FROM pg_catalog.pg_roles) FROM pg_catalog.pg_policy pol WHERE pol.polrelid = '16386' ORDER BY 1`)).toBe(true);
    expect(answersNothing(`SELECT pubname FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_class c ON true UNION SELECT pubname FROM pg_publication WHERE p.puballtables`)).toBe(true);
    // Inner joined to one, or reading a subquery that answers nothing (pgjdbc's getPrimaryKeys).
    expect(answersNothing(`SELECT r.a FROM (SELECT a.attname AS a FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid) JOIN pg_catalog.pg_index i ON (a.attrelid = i.indrelid)) r WHERE r.a = 'x'`)).toBe(true);
    expect(answersNothing(`SELECT i.x FROM pg_index i LEFT JOIN pg_class c ON true`)).toBe(true);
    expect(answersNothing(`SELECT pkc.relname FROM pg_catalog.pg_namespace pkn, pg_catalog.pg_class pkc, pg_catalog.pg_constraint con WHERE true`)).toBe(true);
    expect(answersNothing(`SELECT pkc.relname FROM pg_catalog.pg_namespace pkn, pg_catalog.pg_class pkc WHERE true`)).toBe(false);
    // A branch that reads a catalog with rows outer joined to an empty one, or an aggregate, can answer rows: its error stands.
    expect(answersNothing(`SELECT a.attname FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_description d ON true`)).toBe(false);
    expect(answersNothing(`SELECT a.attname FROM pg_catalog.pg_attribute a LEFT OUTER JOIN pg_catalog.pg_description d ON true`)).toBe(false);
    expect(answersNothing(`SELECT x FROM pg_index UNION SELECT relname FROM pg_class`)).toBe(false);
    expect(answersNothing(`SELECT x FROM pg_index i RIGHT JOIN pg_class c ON true`)).toBe(false);
    expect(answersNothing(`SELECT r.a FROM (SELECT relname AS a FROM pg_class) r JOIN pg_roles ON true`)).toBe(false);
    expect(answersNothing(`SELECT count(*) FROM pg_trigger`)).toBe(false);
    expect(answersNothing(`SELECT 'FROM pg_index' FROM orders`)).toBe(false);
  });

  it('writes NUMERIC in PostgreSQL binary form: base-10000 digits, weight, sign and scale', () => {
    const parts = (b: Buffer) => [b.readInt16BE(0), b.readInt16BE(2), b.readUInt16BE(4), b.readInt16BE(6), ...Array.from({ length: b.readInt16BE(0) }, (_, i) => b.readInt16BE(8 + i * 2))];
    expect(parts(numericBinary('12345.678'))).toEqual([3, 1, 0, 3, 1, 2345, 6780]);
    expect(parts(numericBinary('-0.0001'))).toEqual([1, -1, 0x4000, 4, 1]);
    expect(parts(numericBinary('0.00'))).toEqual([0, 0, 0, 2]);
    expect(parts(numericBinary('100000000'))).toEqual([1, 2, 0, 0, 1]);
  });
});
