import type { TablePart } from '@flashduck/core';
import { describe, expect, it } from 'vitest';
import { changedParts } from './changes.js';

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
