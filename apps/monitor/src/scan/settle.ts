import type { FileFingerprint } from '@flashduck/core';

const sameContent = (a: FileFingerprint, b: FileFingerprint) =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev;

/**
 * Decides when a file is done being written: its size and mtime have not changed for `settleMs`.
 * A file last modified longer ago than that is settled at first sight (start-up does not wait);
 * otherwise it is watched across scans until its fingerprint stays the same for the window, which
 * also covers clocks that disagree (network volumes) since only this process's clock is used then.
 */
export class SettleTracker {
  private readonly seen = new Map<string, { fp: FileFingerprint; since: number }>();
  private readonly complete = new Map<string, { fp: FileFingerprint; until: number }>();

  constructor(private readonly settleMs: number) {}

  /** Marks a file version as complete (replaced atomically by its writer): settled without waiting. */
  markComplete(path: string, fp: FileFingerprint, now: number, ttlMs = 60_000): void {
    this.complete.set(path, { fp, until: now + ttlMs });
  }

  /** True when the file at `path` with fingerprint `fp` may be read. */
  isSettled(path: string, fp: FileFingerprint, now: number): boolean {
    if (this.settleMs === 0) return true;
    const done = this.complete.get(path);
    if (done && done.until >= now && sameContent(done.fp, fp)) return true;
    const prev = this.seen.get(path);
    if (!prev || !sameContent(prev.fp, fp)) {
      this.seen.set(path, { fp, since: now });
      return now - fp.mtimeMs >= this.settleMs && fp.mtimeMs <= now;
    }
    return now - prev.since >= this.settleMs || (now - fp.mtimeMs >= this.settleMs && fp.mtimeMs <= now);
  }

  /** When the file will be settled if it does not change again. */
  settlesAt(path: string, fp: FileFingerprint): number {
    const prev = this.seen.get(path);
    const since = prev?.since ?? Date.now();
    return Math.min(since + this.settleMs, fp.mtimeMs + this.settleMs);
  }

  /** Forgets paths no longer present, and expired completion marks. */
  retain(paths: ReadonlySet<string>, now = Date.now()): void {
    for (const p of this.seen.keys()) if (!paths.has(p)) this.seen.delete(p);
    for (const [p, c] of this.complete) if (c.until < now || !paths.has(p)) this.complete.delete(p);
  }
}
