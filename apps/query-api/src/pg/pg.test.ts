import { describe, expect, it } from 'vitest';
import { rewriteForPostgresClients } from './catalog.js';
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
      `SELECT c.oid FROM fdpg.pg_class c WHERE c.relname ~ '^(orders)$' AND fdpg.pg_table_is_visible(c.oid)`,
    );
    expect(rewriteForPostgresClients('SELECT version(), current_schema()')).toBe(`SELECT 'PostgreSQL 16.0 (FlashDuck) on DuckDB', 'public'`);
    expect(rewriteForPostgresClients(`SELECT typname FROM pg_type WHERE oid = 'x'::regtype`)).toBe(`SELECT typname FROM fdpg.pg_type WHERE oid = 'x'::BIGINT`);
  });

  it('writes NUMERIC in PostgreSQL binary form: base-10000 digits, weight, sign and scale', () => {
    const parts = (b: Buffer) => [b.readInt16BE(0), b.readInt16BE(2), b.readUInt16BE(4), b.readInt16BE(6), ...Array.from({ length: b.readInt16BE(0) }, (_, i) => b.readInt16BE(8 + i * 2))];
    expect(parts(numericBinary('12345.678'))).toEqual([3, 1, 0, 3, 1, 2345, 6780]);
    expect(parts(numericBinary('-0.0001'))).toEqual([1, -1, 0x4000, 4, 1]);
    expect(parts(numericBinary('0.00'))).toEqual([0, 0, 0, 2]);
    expect(parts(numericBinary('100000000'))).toEqual([1, 2, 0, 0, 1]);
  });
});
