import { describe, expect, it } from 'vitest';
import type { FileFingerprint, Fragment } from '@flashduck/core';
import { renamedFragments, versionParts } from './sources.js';

const fp = (ino: number, size = 10): FileFingerprint => ({ dev: 1, ino, size, mtimeMs: 1000 });
const part = (id: string) => ({ id, format: 'parquet' as const, chunks: 1, bytes: 100, rows: 2, members: 1, columns: [] });
const frag = (p: string, f: FileFingerprint, id: string): Fragment => ({ v: 2, path: p, fingerprint: f, part: part(id), member: 0, rows: 2, columns: [], format: 'csv' });

describe('renamedFragments', () => {
  it('gives a renamed file the fragment of the path it left', () => {
    const got = renamedFragments(new Map([['t/new.csv', fp(7)]]), new Map([['t/old.csv', frag('t/old.csv', fp(7), 'aaaa000000000001')]]));
    expect(got.get('t/new.csv')).toMatchObject({ path: 't/new.csv', part: { id: 'aaaa000000000001' } });
  });
  it('does not take the fragment of a path still in the manifest, nor one whose content changed', () => {
    const fragments = new Map([
      ['t/a.csv', frag('t/a.csv', fp(1), 'aaaa000000000001')],
      ['t/gone.csv', frag('t/gone.csv', fp(2), 'aaaa000000000002')],
    ]);
    const got = renamedFragments(new Map([['t/a.csv', fp(1)], ['t/link.csv', fp(1)], ['t/b.csv', fp(2, 99)]]), fragments);
    expect(got.size).toBe(0);
  });
  it('excludes from a merged part the members no served file uses any more', () => {
    const merged = { ...part('bbbb000000000001'), members: 3 };
    const f = (p: string, member: number) => ({ ...frag(p, fp(member), 'x'), part: merged, member });
    expect(versionParts([f('t/a.csv', 0), f('t/c.csv', 2)])).toEqual([{ ...merged, exclude: [1] }]);
    expect(versionParts([f('t/a.csv', 0), f('t/b.csv', 1), f('t/c.csv', 2)])).toEqual([merged]);
  });
  it('lists a single-file part once per file holding it (two files with the same bytes)', () => {
    const a = frag('t/a.csv', fp(1), 'cccc000000000001') as Parameters<typeof versionParts>[0][number];
    const b = frag('t/b.csv', fp(2), 'cccc000000000001') as Parameters<typeof versionParts>[0][number];
    expect(versionParts([a, b]).map((p) => p.id)).toEqual(['cccc000000000001', 'cccc000000000001']);
  });
  it('gives one fragment to one new path only (two hard links of a renamed file: the second is read)', () => {
    const got = renamedFragments(new Map([['t/x.csv', fp(3)], ['t/y.csv', fp(3)]]), new Map([['t/old.csv', frag('t/old.csv', fp(3), 'aaaa000000000003')]]));
    expect(got.size).toBe(1);
  });
});
