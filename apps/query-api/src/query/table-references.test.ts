import { afterAll, describe, expect, it } from 'vitest';
import { TableReferenceParser, versionsRead } from './table-references.js';

const versions = new Map([
  ['orders', 3],
  ['customers', 7],
  ['events', 1],
]);
const ALL = { customers: 7, events: 1, orders: 3 };

describe('tables a statement may read (DuckDB parser)', () => {
  const parser = new TableReferenceParser();
  afterAll(() => parser.close());

  it.each([
    ['SELECT * FROM orders', { orders: 3 }],
    ['select * from ORDERS o join "customers" c on c.id = o.customer_id', { customers: 7, orders: 3 }],
    ['SELECT * FROM memory.orders', { orders: 3 }],
    ['SELECT * FROM memory.main.orders', { orders: 3 }],
    ['SELECT (SELECT max(amount) FROM orders) AS m', { orders: 3 }],
    ['WITH recent AS (SELECT * FROM orders) SELECT count(*) FROM recent', { orders: 3 }],
    ['DESCRIBE customers', { customers: 7 }],
    ['SELECT 1 -- FROM orders', {}],
    ['SELECT 1 /* orders */', {}],
    // Tables the text does not spell out: every served table's version is part of the answer's identity.
    ["SELECT count(*) FROM query_table('ord' || 'ers')", ALL],
    ["SELECT * FROM query('SELECT * FROM events')", ALL],
    ['SELECT count(*) FROM information_schema.tables', ALL],
    ['SELECT * FROM duckdb_tables()', ALL],
    ['SHOW TABLES', ALL],
    ['SELECT count(*) FROM range(10)', ALL],
    ['SELECT * FROM nosuchtable', ALL],
    ['SELECT * FROM other.orders', ALL],
    ['EXPLAIN SELECT * FROM orders', ALL],
    ['SELECT FROM WHERE', ALL],
  ])('%s may read %j', async (sql, expected) => {
    expect(versionsRead(await parser.parse(sql, sql), versions)).toEqual(expected);
  });

  it('remembers a parsed text, so the cache fast path can use it without parsing', async () => {
    const sql = 'SELECT count(*) FROM events';
    expect(parser.known(sql)).toBeUndefined();
    await parser.parse(sql, sql);
    expect(parser.known(sql)).toEqual({ tables: ['events'], dynamic: false });
  });
});
