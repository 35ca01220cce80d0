import { describe, expect, it } from 'vitest';
import { mergeSchemas, widenTypes } from './merge.js';

describe('widenTypes', () => {
  it.each([
    // [left, right, type, kind]
    ['INTEGER', 'INTEGER', 'INTEGER', 'same'],
    ['integer', 'INT', 'INTEGER', 'same'],
    ['NULL', 'DATE', 'DATE', 'same'],
    ['BIGINT', 'NULL', 'BIGINT', 'same'],
    ['INTEGER', 'BIGINT', 'BIGINT', 'widened'],
    ['TINYINT', 'SMALLINT', 'SMALLINT', 'widened'],
    ['UTINYINT', 'TINYINT', 'SMALLINT', 'widened'],
    ['UINTEGER', 'INTEGER', 'BIGINT', 'widened'],
    ['UBIGINT', 'BIGINT', 'HUGEINT', 'widened'],
    ['UHUGEINT', 'BIGINT', 'DOUBLE', 'widened'],
    ['UINTEGER', 'UBIGINT', 'UBIGINT', 'widened'],
    ['BIGINT', 'DOUBLE', 'DOUBLE', 'widened'],
    ['INTEGER', 'FLOAT', 'DOUBLE', 'widened'],
    ['FLOAT', 'FLOAT', 'FLOAT', 'same'],
    ['FLOAT', 'DOUBLE', 'DOUBLE', 'widened'],
    ['DECIMAL(10,2)', 'DECIMAL(12,4)', 'DECIMAL(12,4)', 'widened'],
    ['DECIMAL(10,2)', 'DECIMAL(5,4)', 'DECIMAL(12,4)', 'widened'],
    ['INTEGER', 'DECIMAL(5,2)', 'DECIMAL(12,2)', 'widened'],
    ['BIGINT', 'DECIMAL(18,3)', 'DECIMAL(22,3)', 'widened'],
    ['HUGEINT', 'DECIMAL(18,3)', 'DOUBLE', 'widened'],
    ['DECIMAL(18,3)', 'DOUBLE', 'DOUBLE', 'widened'],
    ['DATE', 'TIMESTAMP', 'TIMESTAMP', 'widened'],
    ['TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_MS', 'widened'],
    ['TIMESTAMP', 'TIMESTAMP_NS', 'TIMESTAMP_NS', 'widened'],
    ['TIMESTAMP', 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP WITH TIME ZONE', 'widened'],
    ['DATE', 'TIMESTAMPTZ', 'TIMESTAMP WITH TIME ZONE', 'widened'],
    ['INTEGER[]', 'BIGINT[]', 'BIGINT[]', 'widened'],
    ['INTEGER[]', 'VARCHAR[]', 'VARCHAR[]', 'text'],
    ['INTEGER[]', 'DATE[]', 'VARCHAR[]', 'text'],
    ['INTEGER[]', 'STRUCT(a INTEGER)', 'JSON', 'text'],
    ['STRUCT(a INTEGER)', 'STRUCT(a INTEGER, b VARCHAR)', 'JSON', 'text'],
    ['JSON', 'STRUCT(a INTEGER)', 'JSON', 'text'],
    ['INTEGER', 'VARCHAR', 'VARCHAR', 'text'],
    ['VARCHAR', 'TIMESTAMP', 'VARCHAR', 'text'],
    ['BOOLEAN', 'INTEGER', 'VARCHAR', 'text'],
    ['DATE', 'TIME', 'VARCHAR', 'text'],
    ['UUID', 'VARCHAR', 'VARCHAR', 'text'],
    ['BLOB', 'INTEGER', 'VARCHAR', 'text'],
    ['VARCHAR(20)', 'TEXT', 'VARCHAR', 'same'],
  ])('%s + %s → %s (%s)', (left, right, type, kind) => {
    const w = widenTypes(left, right);
    expect(w.type).toBe(type);
    expect(w.kind).toBe(kind);
    // widening is symmetric
    expect(widenTypes(right, left).type).toBe(type);
  });
});

describe('mergeSchemas', () => {
  it('unions columns by name in order of first appearance; a missing column belongs to fewer files', () => {
    const merged = mergeSchemas([
      { file: 'a.csv', columns: [{ name: 'id', type: 'INTEGER' }, { name: 'name', type: 'VARCHAR' }] },
      { file: 'b.parquet', columns: [{ name: 'id', type: 'BIGINT' }, { name: 'email', type: 'VARCHAR' }] },
    ]);
    expect(merged.columns).toEqual([
      { name: 'id', type: 'BIGINT', files: ['a.csv', 'b.parquet'] },
      { name: 'name', type: 'VARCHAR', files: ['a.csv'] },
      { name: 'email', type: 'VARCHAR', files: ['b.parquet'] },
    ]);
    expect(merged.conflicts).toEqual([
      {
        column: 'id',
        types: [{ file: 'a.csv', type: 'INTEGER' }, { file: 'b.parquet', type: 'BIGINT' }],
        resolved: 'BIGINT',
        kind: 'widened',
        rule: 'integer+integer→wider integer',
      },
    ]);
  });

  it('matches names case-insensitively and keeps the first spelling', () => {
    const merged = mergeSchemas([
      { file: 'a.csv', columns: [{ name: 'UserId', type: 'INTEGER' }] },
      { file: 'b.csv', columns: [{ name: 'userid', type: 'INTEGER' }] },
    ]);
    expect(merged.columns).toEqual([{ name: 'UserId', type: 'INTEGER', files: ['a.csv', 'b.csv'] }]);
    expect(merged.conflicts).toEqual([]);
  });

  it('reports an integer column that is text in another file as a text conflict naming both files', () => {
    const merged = mergeSchemas([
      { file: 'x/1.csv', columns: [{ name: 'qty', type: 'BIGINT' }] },
      { file: 'x/2.csv', columns: [{ name: 'qty', type: 'VARCHAR' }] },
      { file: 'x/3.csv', columns: [{ name: 'qty', type: 'INTEGER' }] },
    ]);
    expect(merged.columns[0]?.type).toBe('VARCHAR');
    expect(merged.conflicts[0]).toMatchObject({ column: 'qty', resolved: 'VARCHAR', kind: 'text' });
    expect(merged.conflicts[0]?.types.map((t) => t.file)).toEqual(['x/1.csv', 'x/2.csv', 'x/3.csv']);
  });

  it('treats NULL (no values in that file) as neutral and a column that is NULL everywhere as VARCHAR', () => {
    const merged = mergeSchemas([
      { file: 'a.json', columns: [{ name: 'score', type: 'NULL' }, { name: 'note', type: 'NULL' }] },
      { file: 'b.json', columns: [{ name: 'score', type: 'DOUBLE' }] },
    ]);
    expect(merged.columns.map((c) => [c.name, c.type])).toEqual([
      ['score', 'DOUBLE'],
      ['note', 'VARCHAR'],
    ]);
    expect(merged.conflicts).toEqual([]);
  });

  it('ignores a duplicate column inside one file after its first occurrence', () => {
    const merged = mergeSchemas([{ file: 'a.csv', columns: [{ name: 'a', type: 'INTEGER' }, { name: 'A', type: 'VARCHAR' }] }]);
    expect(merged.columns).toEqual([{ name: 'a', type: 'INTEGER', files: ['a.csv'] }]);
  });

  it('returns no columns for no files', () => {
    expect(mergeSchemas([])).toEqual({ columns: [], conflicts: [] });
  });
});
