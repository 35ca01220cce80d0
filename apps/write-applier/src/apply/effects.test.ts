import { describe, expect, it } from 'vitest';
import { canonicalKey, computeEffects, fitValue, respell } from './effects.js';

describe('computeEffects', () => {
  const key = ['id'];
  it('merges upserts of one key column by column, later values winning', () => {
    const e = computeEffects(
      [
        { id: '1-0', op: 'upsert', key, rows: [{ id: 1, a: 1, b: 1 }] },
        { id: '2-0', op: 'upsert', key, rows: [{ id: 1, b: 2 }] },
      ],
      key,
    );
    expect(e.get(canonicalKey(key, { id: 1 }))).toEqual({ op: 'upsert', row: { id: 1, a: 1, b: 2 }, fresh: false });
  });

  it('starts a row over after a delete, and lets a delete win over earlier upserts', () => {
    const e = computeEffects(
      [
        { id: '1-0', op: 'upsert', key, rows: [{ id: 1, a: 1 }, { id: 2, a: 2 }] },
        { id: '2-0', op: 'delete', key, rows: [{ id: 1 }, { id: 2 }] },
        { id: '3-0', op: 'upsert', key, rows: [{ id: 2, b: 3 }] },
      ],
      key,
    );
    expect(e.get(canonicalKey(key, { id: 1 }))).toEqual({ op: 'delete' });
    expect(e.get(canonicalKey(key, { id: 2 }))).toEqual({ op: 'upsert', row: { id: 2, b: 3 }, fresh: true });
  });

  it('treats a number and its text as the same key', () => {
    expect(canonicalKey(['id', 'k'], { id: 5, k: 'x' })).toBe(canonicalKey(['id', 'k'], { id: '5', k: 'x' }));
  });

  it('respells columns to the table spelling', () => {
    expect(respell({ ID: 1, Name: 'a', extra: 2 }, new Map([['id', 'id'], ['name', 'name']]))).toEqual({ id: 1, name: 'a', extra: 2 });
  });
});

describe('fitValue', () => {
  it.each([
    ['BIGINT', 5, 'BIGINT'],
    ['BIGINT', '42', 'BIGINT'],
    ['INTEGER', 1.5, 'DOUBLE'],
    ['BIGINT', '2.5', 'DOUBLE'],
    ['DOUBLE', 3, 'DOUBLE'],
    ['DECIMAL(10,2)', '12.34', 'DECIMAL(10,2)'],
    ['BOOLEAN', true, 'BOOLEAN'],
    ['BOOLEAN', 'false', 'BOOLEAN'],
    ['DATE', '2024-01-02', 'DATE'],
    ['DATE', '2024-01-02 03:04:05', 'TIMESTAMP'],
    ['TIMESTAMP', '2024-01-02T03:04:05Z', 'TIMESTAMP'],
    ['VARCHAR', 12, 'VARCHAR'],
    ['BIGINT', null, 'BIGINT'],
  ])('%s accepts %j as %s', (type, value, expected) => {
    expect(fitValue('c', type, value)).toEqual({ type: expected });
  });

  it.each([
    ['BIGINT', 'lots'],
    ['BIGINT', true],
    ['DOUBLE', 'n/a'],
    ['BOOLEAN', 'maybe'],
    ['DATE', 'yesterday'],
    ['DATE', 20240102],
  ])('%s refuses %j with a reason naming the column', (type, value) => {
    const r = fitValue('qty', type, value);
    expect(r).toHaveProperty('error');
    expect((r as { error: string }).error).toMatch(/column "qty" is/);
  });
});
