import { describe, expect, it } from 'vitest';
import { createKeys, hashTagOf } from './keys.js';

describe('createKeys', () => {
  const k = createKeys('fd');

  it('puts every key of one table in the same cluster slot (same hash tag)', () => {
    const perTable = [
      k.tableFiles('orders'),
      k.tableState('orders'),
      k.tableMeta('orders'),
      k.tableSeq('orders'),
      k.tableRetired('orders'),
      k.tableFragments('orders'),
      k.tableBuildLease('orders'),
      k.tableBuildEpoch('orders'),
      k.tableWrites('orders'),
    ];
    expect(new Set(perTable.map(hashTagOf))).toEqual(new Set(['orders']));
    expect(new Set(perTable).size).toBe(perTable.length);
  });

  it('keys a part by its own id, so the parts of one table spread over the cluster', () => {
    expect(k.partChunk('ab12', 0)).toBe('fd:{part:ab12}:0');
    expect(hashTagOf(k.partChunk('ab12', 0))).toBe(hashTagOf(k.partChunk('ab12', 7)));
    expect(hashTagOf(k.partChunk('ab12', 0))).not.toBe(hashTagOf(k.partChunk('cd34', 0)));
  });

  it('keeps a lease owner and its epoch in one slot, apart from tables', () => {
    expect(hashTagOf(k.leaseOwner('monitor'))).toBe(hashTagOf(k.leaseEpoch('monitor')));
    expect(hashTagOf(k.leaseOwner('monitor'))).not.toBe(hashTagOf(k.tableMeta('monitor')));
  });

  it('puts all BullMQ keys under one hash tag', () => {
    expect(k.bullPrefix).toBe('fd:{q}');
    expect(hashTagOf(`${k.bullPrefix}:scan-diffs:wait`)).toBe('q');
  });

  it('starts every name with the prefix, so deployments sharing a Redis never collide', () => {
    const other = createKeys('staging');
    expect(k.tableMeta('orders')).toBe('fd:{orders}:meta');
    expect(other.tableMeta('orders')).toBe('staging:{orders}:meta');
    expect(other.tables.startsWith('staging:')).toBe(true);
    expect(other.events.startsWith('staging:')).toBe(true);
  });

  it.each(['', 'a b', 'x{y}', 'p:q'])('refuses the prefix %j', (prefix) => {
    expect(() => createKeys(prefix)).toThrow(/invalid key prefix/);
  });
});
