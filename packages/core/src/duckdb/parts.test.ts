import { describe, expect, it } from 'vitest';
import type { TablePart } from '../messages.js';
import { partsSelectSql } from './parts.js';

const part = (id: string, columns: { name: string; type: string }[], extra: Partial<TablePart> = {}): TablePart => ({
  id,
  format: 'duckdb',
  chunks: 1,
  bytes: 10,
  rows: 1,
  members: 1,
  columns,
  ...extra,
});

describe('partsSelectSql', () => {
  it('reads every part from its attached file and casts its columns to the table types', () => {
    const table = [
      { name: 'id', type: 'BIGINT' },
      { name: 'name', type: 'VARCHAR' },
    ];
    const sql = partsSelectSql([part('a1', table), part('b1', [{ name: 'ID', type: 'INTEGER' }])], table)!;
    expect(sql.split('\nUNION ALL\n')).toEqual([
      `SELECT "id", "name" FROM "p_a1".main.part`,
      `SELECT CAST("ID" AS BIGINT) AS "id", CAST(NULL AS VARCHAR) AS "name" FROM "p_b1".main.part`,
    ]);
  });

  it('filters out the members a version excludes', () => {
    const sql = partsSelectSql([part('m1', [{ name: 'id', type: 'BIGINT' }], { members: 3, exclude: [1] })], [{ name: 'id', type: 'BIGINT' }]);
    expect(sql).toBe(`SELECT "id" FROM "p_m1".main.part WHERE "__fd_member" NOT IN (1)`);
  });

  it('is null for a version with nothing to serve', () => {
    expect(partsSelectSql([], [{ name: 'id', type: 'BIGINT' }])).toBeNull();
    expect(partsSelectSql([part('a1', [])], [])).toBeNull();
  });
});
