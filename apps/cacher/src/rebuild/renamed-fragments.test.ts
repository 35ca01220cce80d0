import { describe, expect, it } from 'vitest';
import type { FileFingerprint, Fragment } from '@flashduck/core';
import { renamedFragments } from './build-snapshot.js';

const fp = (ino: number, size = 10): FileFingerprint => ({ dev: 1, ino, size, mtimeMs: 1000 });
const frag = (p: string, f: FileFingerprint, blob: string): Fragment => ({ v: 1, path: p, fingerprint: f, blob, chunks: 1, bytes: 100, rows: 2, columns: [], format: 'csv' });

describe('renamedFragments', () => {
  it('gives a renamed file the fragment of the path it left', () => {
    const got = renamedFragments(new Map([['t/new.csv', fp(7)]]), new Map([['t/old.csv', frag('t/old.csv', fp(7), 'f1-1')]]));
    expect(got.get('t/new.csv')).toMatchObject({ path: 't/new.csv', blob: 'f1-1' });
  });
  it('does not take the fragment of a path still in the manifest, nor one whose content changed', () => {
    const fragments = new Map([
      ['t/a.csv', frag('t/a.csv', fp(1), 'f1-1')],
      ['t/gone.csv', frag('t/gone.csv', fp(2), 'f1-2')],
    ]);
    const got = renamedFragments(new Map([['t/a.csv', fp(1)], ['t/link.csv', fp(1)], ['t/b.csv', fp(2, 99)]]), fragments);
    expect(got.size).toBe(0);
  });
  it('gives one fragment to one new path only (two hard links of a renamed file: the second is read)', () => {
    const got = renamedFragments(new Map([['t/x.csv', fp(3)], ['t/y.csv', fp(3)]]), new Map([['t/old.csv', frag('t/old.csv', fp(3), 'f1-3')]]));
    expect(got.size).toBe(1);
  });
});
