import { DuckDBInstance } from '@duckdb/node-api';
import type { TablePart } from '@flashduck/core';
import { describe, expect, it } from 'vitest';
import { changedParts, changesSql } from './changes.js';

const part = (id: string, members = 1, exclude?: number[]): TablePart => ({
  id: id.padEnd(16, '0'),
  format: 'duckdb',
  chunks: 1,
  bytes: 100,
  rows: 10,
  members,
  columns: [{ name: 'id', type: 'BIGINT' }],
  ...(exclude ? { exclude } : {}),
});
const ids = (parts: readonly TablePart[]) => parts.map((p) => `${p.id.slice(0, 2)}${'include' in p ? `+${(p as { include: number[] }).include.join(',')}` : ''}${p.exclude?.length ? `-${p.exclude.join(',')}` : ''}`);

describe('what two versions do not share (change feed)', () => {
  it('shared parts cancel; an appended or replaced file is its own part', () => {
    const r = changedParts([part('aa'), part('bb')], [part('aa'), part('cc'), part('dd')]);
    expect(ids(r.removed)).toEqual(['bb']);
    expect(ids(r.added)).toEqual(['cc', 'dd']);
  });

  it('a merged part serving other members: only the members served in one version and not the other', () => {
    // from: member 1 excluded (its file changed before); to: members 0 and 2 excluded, member 1 back.
    const r = changedParts([part('mm', 3, [1])], [part('mm', 3, [2, 0]), part('nn')]);
    expect(ids(r.removed)).toEqual(['mm+0,2']);
    expect(ids(r.added)).toEqual(['mm+1', 'nn']);
  });

  it('counts a part listed twice as two (identical files)', () => {
    const r = changedParts([part('aa'), part('aa')], [part('aa')]);
    expect(ids(r.removed)).toEqual(['aa']);
    expect(r.added).toEqual([]);
    expect(changedParts([part('aa')], [part('aa')])).toEqual({ removed: [], added: [] });
  });
});

describe('the change rows of two relations (DuckDB)', () => {
  const columns = [
    { name: 'id', type: 'INTEGER' },
    { name: 'x', type: 'DOUBLE' },
    { name: 's', type: 'VARCHAR' },
  ];
  const diff = async (removed: string, added: string, key: string[] = [], sides?: { removed: boolean; added: boolean }) => {
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    try {
      await conn.run(`CREATE TABLE removed AS SELECT * FROM (VALUES ${removed}) v(id, x, s)`);
      await conn.run(`CREATE TABLE added AS SELECT * FROM (VALUES ${added}) v(id, x, s)`);
      const rows = (await conn.runAndReadAll(changesSql('t', columns, key, 'removed', 'added', sides))).getRowObjectsJS();
      return key.length ? rows : rows.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  };
  const typed = (rows: string) => rows.replace(/\((\w+|NULL), (\S+|NULL), /g, '($1::INTEGER, $2::DOUBLE, ');

  it('counts rows as a multiset, with NULLs and NaNs equal to themselves', async () => {
    const got = await diff(typed(`(1, 1.0, 'a'), (1, 1.0, 'a'), (2, 'NaN', NULL), (3, 3.0, 'c')`), typed(`(1, 1.0, 'a'), (2, 'NaN', NULL), (3, 3.5, 'c'), (3, 3.5, 'c')`));
    expect(got).toEqual([
      { id: 1, x: 1, s: 'a', _change: 'delete' },
      { id: 3, x: 3, s: 'c', _change: 'delete' },
      { id: 3, x: 3.5, s: 'c', _change: 'insert' },
      { id: 3, x: 3.5, s: 'c', _change: 'insert' },
    ]);
  });

  it('pairs a key deleted once and inserted once into an update; duplicate and NULL keys stay unpaired', async () => {
    const got = await diff(typed(`(1, 1.0, 'a'), (2, 2.0, 'b'), (2, 2.5, 'b2'), (NULL, 9.0, 'n')`), typed(`(1, 1.5, 'a'), (2, 2.0, 'B'), (NULL, 9.5, 'n'), (4, 4.0, 'd')`), ['id']);
    expect(got).toEqual([
      { id: 1, x: 1.5, s: 'a', _change: 'update', _old_x: 1, _old_s: 'a' },
      { id: 2, x: 2, s: 'b', _change: 'delete', _old_x: null, _old_s: null },
      { id: 2, x: 2.5, s: 'b2', _change: 'delete', _old_x: null, _old_s: null },
      { id: 2, x: 2, s: 'B', _change: 'insert', _old_x: null, _old_s: null },
      { id: 4, x: 4, s: 'd', _change: 'insert', _old_x: null, _old_s: null },
      { id: null, x: 9, s: 'n', _change: 'delete', _old_x: null, _old_s: null },
      { id: null, x: 9.5, s: 'n', _change: 'insert', _old_x: null, _old_s: null },
    ]);
  });

  it('answers an append (nothing removed) or removals alone with the one side as it is', async () => {
    const rows = typed(`(2, 2.0, 'b'), (1, 1.0, 'a'), (1, 1.0, 'a')`);
    const none = typed(`(0, 0.0, 'unused')`);
    expect(await diff(none, rows, ['id'], { removed: false, added: true })).toEqual([
      { id: 1, x: 1, s: 'a', _change: 'insert', _old_x: null, _old_s: null },
      { id: 1, x: 1, s: 'a', _change: 'insert', _old_x: null, _old_s: null },
      { id: 2, x: 2, s: 'b', _change: 'insert', _old_x: null, _old_s: null },
    ]);
    expect((await diff(rows, none, [], { removed: true, added: false })).map((r) => r._change)).toEqual(['delete', 'delete', 'delete']);
    expect(await diff(none, none, [], { removed: false, added: false })).toEqual([]);
  });

  it('refuses a table whose own column is named like the feed\'s', () => {
    expect(() => changesSql('t', [...columns, { name: '_change', type: 'VARCHAR' }], [], 'removed', 'added')).toThrow(/table "t" has a column named "_change"/);
    expect(() => changesSql('t', [...columns, { name: '_old_x', type: 'VARCHAR' }], ['id'], 'removed', 'added')).toThrow(/"_old_x"/);
  });
});
