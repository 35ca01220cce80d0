import { describe, expect, it } from 'vitest';
import { ScanDiff, SnapshotEvent, decode, encode } from './messages.js';

describe('message codecs', () => {
  const diff: ScanDiff = { v: 1, table: 'orders', gen: 3, at: 1, added: ['orders/a.csv'], removed: [], modified: [], renamed: [], files: 1 };

  it('round-trips a scan diff', () => {
    expect(decode(ScanDiff, encode(ScanDiff, diff))).toEqual({ ok: true, value: diff });
  });

  it('rejects a message of another version, naming the field', () => {
    const d = decode(ScanDiff, JSON.stringify({ ...diff, v: 2 }));
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(/v/);
  });

  it('rejects text that is not JSON without throwing', () => {
    const d = decode(SnapshotEvent, '{"v":1,');
    expect(d).toMatchObject({ ok: false });
    if (!d.ok) expect(d.error).toMatch(/not JSON/);
  });

  it('rejects a message with a missing field', () => {
    const d = decode(SnapshotEvent, { v: 1, type: 'snapshot', version: 2, at: 3 });
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(/table/);
  });

  it('refuses to encode an invalid message (a writer bug fails loudly)', () => {
    expect(() => encode(SnapshotEvent, { v: 1, type: 'nope', table: 't', version: 1, at: 0 } as unknown as SnapshotEvent)).toThrow();
  });
});
