import { describe, expect, it } from 'vitest';
import type { Fragment, TablePart } from '@flashduck/core';
import { absorbedParts, mergeMembers, mergeSelectSql, planMerge } from './merge.js';

const cols = [{ name: 'id', type: 'BIGINT' }];
const part = (n: number, bytes: number, extra: Partial<TablePart> = {}): TablePart => ({
  id: n.toString(16).padStart(16, '0'),
  format: 'parquet',
  chunks: 1,
  bytes,
  rows: bytes,
  members: 1,
  columns: cols,
  ...extra,
});
const policy = { maxParts: 4, maxBytes: 1_000, excludedShare: 0.25 };

describe('planMerge', () => {
  it('leaves a table with few parts alone', () => {
    expect(planMerge([part(1, 10), part(2, 10), part(3, 10), part(4, 10)], policy)).toBeNull();
  });

  it('merges the smallest parts with the same columns, up to the size cap', () => {
    const parts = [part(1, 400), part(2, 10), part(3, 300), part(4, 20), part(5, 450)];
    expect(planMerge(parts, policy)!.map((p) => p.bytes)).toEqual([10, 20, 300, 400]);
  });

  it('never merges parts whose columns differ, nor parts already big', () => {
    const other = [{ name: 'id', type: 'VARCHAR' }];
    const parts = [part(1, 10), part(2, 10, { columns: other }), part(3, 900), part(4, 800), part(5, 10, { columns: other }), part(6, 20, { columns: other })];
    const plan = planMerge(parts, policy)!;
    expect(plan.map((p) => p.bytes)).toEqual([10, 10, 20]);
    expect(new Set(plan.map((p) => p.columns[0]!.type))).toEqual(new Set(['VARCHAR']));
  });

  it('rewrites a merged part whose members are mostly excluded, whatever the count', () => {
    const wasteful = part(1, 500, { members: 4, exclude: [0, 1] });
    expect(planMerge([wasteful, part(2, 10)], policy)!.map((p) => p.id)).toEqual([part(2, 10).id, wasteful.id]);
  });
});

describe('mergeSelectSql', () => {
  const frag = (p: string, part: TablePart, member: number): Fragment => ({
    v: 2,
    path: p,
    fingerprint: { size: 1, mtimeMs: 1, ino: 1, dev: 1 },
    part,
    member,
    rows: 1,
    columns: cols,
    format: 'csv',
  });

  it('numbers every served file anew, excluded members left out, a part shared by two files read for each', () => {
    const a = part(1, 10);
    const b = part(2, 10, { members: 3, exclude: [1] });
    const fragments = new Map([
      ['t/a1.csv', frag('t/a1.csv', a, 0)],
      ['t/a2.csv', frag('t/a2.csv', a, 0)],
      ['t/b0.csv', frag('t/b0.csv', b, 0)],
      ['t/b2.csv', frag('t/b2.csv', b, 2)],
      ['t/other.csv', frag('t/other.csv', part(9, 10), 0)],
    ]);
    const members = mergeMembers([a, b], fragments);
    expect(members.map((m) => [m.path, m.member])).toEqual([['t/a1.csv', 0], ['t/a2.csv', 0], ['t/b0.csv', 0], ['t/b2.csv', 2]]);
    const sql = mergeSelectSql(members).split('\nUNION ALL\n');
    // The merge's version records each listing of the inputs the merged part holds: `a` twice, one per file,
    // even when the plan took only one of its listings.
    const listed = [a, a, b, part(9, 10)];
    expect(absorbedParts(listed, [a, b])).toEqual([a, a, b]);
    expect(absorbedParts(listed, [b, a])).toEqual([a, a, b]);
    expect(sql).toEqual([
      `SELECT "id", 0::INTEGER AS __fd_member FROM "p_${a.id}".main.part`,
      `SELECT "id", 1::INTEGER AS __fd_member FROM "p_${a.id}".main.part`,
      `SELECT "id", (CASE "__fd_member" WHEN 0 THEN 2 WHEN 2 THEN 3 END)::INTEGER AS __fd_member FROM "p_${b.id}".main.part WHERE "__fd_member" IN (0, 2)`,
    ]);
  });
});
