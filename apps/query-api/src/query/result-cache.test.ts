import { describe, expect, it } from 'vitest';
import { ResultCache, etagOf, isCacheable, normalizeSql, resultKey } from './result-cache.js';

const entry = (body: string, tables: Record<string, number>) => ({ body: Buffer.from(body), contentType: 'text/plain', rowCount: 1, truncated: false, tables, elapsedMs: 1, etag: '"x"' });

describe('result cache', () => {
  it('normalizes whitespace, comments and a trailing semicolon, never inside literals', () => {
    expect(normalizeSql('  SELECT  *\n FROM t -- note\n WHERE a = 1 ;')).toBe('SELECT * FROM t WHERE a = 1');
    expect(normalizeSql("SELECT 'a  b' ,  \"x  y\" FROM t")).toBe(`SELECT 'a  b' , "x  y" FROM t`);
    expect(normalizeSql('SELECT 1 /* x */ + 2')).toBe('SELECT 1 + 2');
  });

  it('never caches volatile functions, and is not fooled by them in strings', () => {
    expect(isCacheable('SELECT random()')).toBe(false);
    expect(isCacheable('SELECT now(), * FROM t')).toBe(false);
    expect(isCacheable('SELECT gen_random_uuid()')).toBe(false);
    expect(isCacheable("SELECT * FROM t WHERE note = 'random'")).toBe(true);
    expect(isCacheable('SELECT count(*) FROM t')).toBe(true);
  });

  it('keys answers by format and the versions of the tables read', () => {
    const at = () => 1000;
    const a = resultKey('SELECT 1', 'json', { t: 1, s: 2 }, at);
    expect(a).toBe(resultKey('SELECT 1', 'json', { s: 2, t: 1 }, at));
    expect(a).not.toBe(resultKey('SELECT 1', 'json', { t: 2, s: 2 }, at));
    expect(a).not.toBe(resultKey('SELECT 1', 'csv', { t: 1, s: 2 }, at));
    expect(etagOf(a)).toBe(etagOf(resultKey('SELECT 1', 'json', { s: 2, t: 1 }, at)));
    // The same version number published again (Redis lost its data, numbering restarted) is another answer.
    expect(a).not.toBe(resultKey('SELECT 1', 'json', { t: 1, s: 2 }, (t) => (t === 't' ? 2000 : 1000)));
  });

  it('evicts the least recently used past its byte budget, and everything that read a changed table', () => {
    const c = new ResultCache(10, 8);
    c.set('a', entry('aaaa', { t: 1 }));
    c.set('b', entry('bbbb', { s: 1 }));
    c.get('a');
    c.set('c', entry('cccc', { t: 1 }));
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBeDefined();
    c.set('big', entry('x'.repeat(9), {}));
    expect(c.get('big')).toBeUndefined();
    expect(c.evictTables(new Set(['t']))).toBe(2);
    expect(c.size).toBe(0);
  });
});
