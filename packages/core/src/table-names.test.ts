import { describe, expect, it } from 'vitest';
import { fileKindOf, isIgnoredName, normalizeTableName, tableOfPath } from './table-names.js';

describe('table names', () => {
  it.each([
    ['orders/2024/a.csv', 'orders'],
    ['orders/a.parquet', 'orders'],
    ['customers.parquet', 'customers'],
    ['Sales Report 2024.csv', 'sales_report_2024'],
    ['my-table.ndjson', 'my_table'],
    ['2024.csv', 't_2024'],
    ['events.csv.gz', 'events'],
    ['Données/x.json', 'donnees'],
    ['README.md', null],
    ['notes.txt', null],
  ])('%s belongs to table %s', (path, table) => {
    expect(tableOfPath(path)).toBe(table);
  });

  it('normalizes to an SQL identifier or null', () => {
    expect(normalizeTableName('  __x__ ')).toBe('x');
    expect(normalizeTableName('***')).toBeNull();
    expect(normalizeTableName('a'.repeat(100))).toHaveLength(63);
  });

  it.each(['.hidden.csv', '_staging.csv', 'a.csv.tmp', 'a.csv~', 'a.csv.partial', '.a.csv.swp'])('ignores %s', (name) => {
    expect(isIgnoredName(name)).toBe(true);
  });

  it('reads formats and compression from the extension', () => {
    expect(fileKindOf('a.CSV')).toEqual({ format: 'csv', compression: null, extension: '.csv' });
    expect(fileKindOf('a.tsv.gz')).toEqual({ format: 'tsv', compression: 'gzip', extension: '.tsv.gz' });
    expect(fileKindOf('a.jsonl.zst')).toEqual({ format: 'ndjson', compression: 'zstd', extension: '.jsonl.zst' });
    expect(fileKindOf('a.json')?.format).toBe('json');
    expect(fileKindOf('a.parquet.gz')).toBeNull();
    expect(fileKindOf('a.xlsx')).toBeNull();
  });
});
