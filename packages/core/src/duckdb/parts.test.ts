import { describe, expect, it } from 'vitest';
import type { TablePart } from '../messages.js';
import { partsSelectSql } from './parts.js';

const part = (id: string, columns: { name: string; type: string }[], extra: Partial<TablePart> = {}): TablePart => ({
  id,
  format: 'parquet',
  chunks: 1,
  bytes: 10,
  rows: 1,
  members: 1,
  columns,
  ...extra,
});
const fileOf = (p: TablePart) => `/c/${p.id}.parquet`;

describe('partsSelectSql', () => {
  it('reads parts with the same columns in one scan and casts the others to the table types', () => {
    const table = [
      { name: 'id', type: 'BIGINT' },
      { name: 'name', type: 'VARCHAR' },
    ];
    const sql = partsSelectSql(
      [part('a1', [{ name: 'id', type: 'BIGINT' }, { name: 'name', type: 'VARCHAR' }]), part('a2', [{ name: 'id', type: 'BIGINT' }, { name: 'name', type: 'VARCHAR' }]), part('b1', [{ name: 'ID', type: 'INTEGER' }])],
      table,
      fileOf,
    )!;
    expect(sql.split('\nUNION ALL\n')).toEqual([
      `SELECT "id", "name" FROM read_parquet(['/c/a1.parquet', '/c/a2.parquet'])`,
      `SELECT CAST("ID" AS BIGINT) AS "id", CAST(NULL AS VARCHAR) AS "name" FROM read_parquet('/c/b1.parquet')`,
    ]);
  });

  it('filters out the members a version excludes', () => {
    const sql = partsSelectSql([part('m1', [{ name: 'id', type: 'BIGINT' }], { members: 3, exclude: [1] })], [{ name: 'id', type: 'BIGINT' }], fileOf);
    expect(sql).toBe(`SELECT "id" FROM read_parquet('/c/m1.parquet') WHERE "__fd_member" NOT IN (1)`);
  });

  it('is null for a version with nothing to serve', () => {
    expect(partsSelectSql([], [{ name: 'id', type: 'BIGINT' }], fileOf)).toBeNull();
    expect(partsSelectSql([part('a1', [])], [], fileOf)).toBeNull();
  });
});
