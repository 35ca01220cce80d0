import { describe, expect, it } from 'vitest';
import { SettleTracker } from './settle.js';

const fp = (size: number, mtimeMs: number) => ({ size, mtimeMs, ino: 1, dev: 1 });

describe('SettleTracker', () => {
  it('settles an old file at first sight', () => {
    expect(new SettleTracker(500).isSettled('a', fp(1, 0), 10_000)).toBe(true);
  });

  it('waits for a file written just now until it stays unchanged for the window', () => {
    const s = new SettleTracker(500);
    expect(s.isSettled('a', fp(1, 10_000), 10_000)).toBe(false);
    expect(s.isSettled('a', fp(2, 10_200), 10_200)).toBe(false); // still growing
    expect(s.isSettled('a', fp(2, 10_200), 10_500)).toBe(false);
    expect(s.isSettled('a', fp(2, 10_200), 10_700)).toBe(true);
    expect(s.settlesAt('a', fp(2, 10_200))).toBe(10_700);
  });

  it('relies on its own clock when the file mtime is in the future (skewed network volume)', () => {
    const s = new SettleTracker(500);
    expect(s.isSettled('a', fp(1, 99_999), 10_000)).toBe(false);
    expect(s.isSettled('a', fp(1, 99_999), 10_600)).toBe(true);
  });

  it('settles everything at once with a zero window', () => {
    expect(new SettleTracker(0).isSettled('a', fp(1, 10_000), 10_000)).toBe(true);
  });
});

describe('SettleTracker completion hints', () => {
  it('settles a file its writer marked complete at once, for exactly that version', () => {
    const s = new SettleTracker(500);
    s.markComplete('a', fp(2, 10_000), 10_000);
    expect(s.isSettled('a', fp(2, 10_000), 10_000)).toBe(true);
    expect(s.isSettled('a', fp(3, 10_050), 10_050)).toBe(false); // changed again since: wait as usual
  });

  it('forgets a completion mark after its time to live', () => {
    const s = new SettleTracker(500);
    s.markComplete('a', fp(2, 10_000), 10_000, 100);
    s.retain(new Set(['a']), 20_000);
    expect(s.isSettled('a', fp(2, 20_000), 20_000)).toBe(false);
  });
});
