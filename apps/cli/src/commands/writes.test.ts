import { describe, expect, it } from 'vitest';
import { parseCsv, parseRows } from './writes.js';

describe('write input parsing', () => {
  it('reads CSV with quotes, typed numbers and booleans, empty cells as NULL', () => {
    expect(parseCsv('id,name,ok,zip\n1,"Smith, J.",true,\n2,"say ""hi""",false,007\n')).toEqual([
      { id: 1, name: 'Smith, J.', ok: true, zip: null },
      { id: 2, name: 'say "hi"', ok: false, zip: '007' },
    ]);
  });

  it('reads a JSON array, a single object, and NDJSON', () => {
    expect(parseRows('[{"id":1},{"id":2}]', undefined)).toEqual([{ id: 1 }, { id: 2 }]);
    expect(parseRows('{"id":1}', undefined)).toEqual([{ id: 1 }]);
    expect(parseRows('{"id":1}\n{"id":2}\n', undefined)).toEqual([{ id: 1 }, { id: 2 }]);
    expect(parseRows('{"id":1}\n', undefined, 'x.ndjson')).toEqual([{ id: 1 }]);
    expect(parseRows('id\n3\n', undefined, 'x.csv')).toEqual([{ id: 3 }]);
  });
});
