import { describe, expect, it } from 'vitest';
import { tablesRead } from './run-query.js';

describe('tablesRead', () => {
  const versions = new Map([
    ['orders', 3],
    ['customers', 7],
    ['events', 1],
  ]);

  it.each([
    ['SELECT * FROM orders', { orders: 3 }],
    ['select * from ORDERS o join "customers" c on c.id = o.customer_id', { customers: 7, orders: 3 }],
    ['SELECT * FROM fd_orders.orders', { orders: 3 }],
    ["SELECT * FROM query_table('events')", { events: 1 }],
    ['SELECT 1 -- FROM orders', {}],
    ['SELECT 1 /* orders */', {}],
    ['SELECT count(*) FROM range(10)', {}],
  ])('%s reads %j', (sql, expected) => {
    expect(tablesRead(sql, versions)).toEqual(expected);
  });
});
