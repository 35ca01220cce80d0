import { describe, expect, it } from 'vitest';
import type { FileFingerprint } from '@flashduck/core';
import { diffManifests, isEmptyDiff, keepUnlisted } from './diff.js';

const fp = (ino: number, size = 10, mtimeMs = 1000): FileFingerprint => ({ size, mtimeMs, ino, dev: 1 });
const m = (entries: [string, FileFingerprint][]) => new Map(entries);

describe('diffManifests', () => {
  it('sees created and deleted files', () => {
    const d = diffManifests(m([['t/a.csv', fp(1)]]), m([['t/b.csv', fp(2)]]));
    expect(d).toEqual({ added: ['t/b.csv'], removed: ['t/a.csv'], modified: [], renamed: [] });
  });

  it('sees an in-place modification by size, by mtime, and by inode (atomic replace)', () => {
    const before = m([['t/a.csv', fp(1)], ['t/b.csv', fp(2)], ['t/c.csv', fp(3)]]);
    const after = m([['t/a.csv', fp(1, 11)], ['t/b.csv', fp(2, 10, 2000)], ['t/c.csv', fp(9)]]);
    expect(diffManifests(before, after).modified).toEqual(['t/a.csv', 't/b.csv', 't/c.csv']);
  });

  it('sees a rename: same inode, size and mtime under a new name', () => {
    const d = diffManifests(m([['t/a.csv', fp(1)]]), m([['t/z.csv', fp(1)]]));
    expect(d).toEqual({ added: [], removed: [], modified: [], renamed: [{ from: 't/a.csv', to: 't/z.csv' }] });
  });

  it('does not call it a rename when the content changed on the way', () => {
    const d = diffManifests(m([['t/a.csv', fp(1)]]), m([['t/z.csv', fp(1, 99)]]));
    expect(d.renamed).toEqual([]);
    expect(d.added).toEqual(['t/z.csv']);
    expect(d.removed).toEqual(['t/a.csv']);
  });

  it('reports nothing for an unchanged manifest', () => {
    const same = m([['t/a.csv', fp(1)]]);
    expect(isEmptyDiff(diffManifests(same, new Map(same)))).toBe(true);
  });

  it('sees a file becoming refused (e.g. replaced by a symlink out of the data dir)', () => {
    const d = diffManifests(m([['t/a.csv', fp(1)]]), m([['t/a.csv', { ...fp(1), refused: 'symlink points outside the data dir' }]]));
    expect(d.modified).toEqual(['t/a.csv']);
  });
});

describe('keepUnlisted (a listing during which the folder changed)', () => {
  it('keeps a recorded file the listing lacks: it may have moved between two folders of the table meanwhile', () => {
    expect([...keepUnlisted(m([['t/sub/a.csv', fp(1)]]), m([])).keys()]).toEqual(['t/sub/a.csv']);
  });
  it('takes a file listed under its new name as renamed, never as two files', () => {
    expect([...keepUnlisted(m([['t/a.csv', fp(1)]]), m([['t/b.csv', fp(1)]])).keys()]).toEqual(['t/b.csv']);
  });
  it('takes a file listed under two names in one walk (moved between two folders meanwhile) as one file', () => {
    expect([...keepUnlisted(m([['t/sub/a.csv', fp(1)]]), m([['t/sub/a.csv', fp(1)], ['t/a.csv', fp(1)]])).keys()]).toEqual(['t/sub/a.csv']);
    expect(keepUnlisted(m([]), m([['t/x.csv', fp(5)], ['t/sub/x.csv', fp(5)]])).size).toBe(1);
  });
  it('keeps hard links that stable listings recorded', () => {
    const both = m([['t/a.csv', fp(1)], ['t/b.csv', fp(1)]]);
    expect(keepUnlisted(both, both).size).toBe(2);
  });
  it('records new and changed files at once', () => {
    const got = keepUnlisted(m([['t/a.csv', fp(1)]]), m([['t/a.csv', fp(1, 20)], ['t/c.csv', fp(3)]]));
    expect(Object.fromEntries(got)).toEqual({ 't/a.csv': fp(1, 20), 't/c.csv': fp(3) });
  });
});
