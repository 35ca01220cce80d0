/**
 * mulberry32: a tiny deterministic PRNG. One seed gives one sequence of file operations, so a failing run
 * is replayed by passing its seed again (only the timing of the system under test differs).
 */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  /** One of `choices`, each with its weight (weights ≤ 0 are never chosen). */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((s, [, w]) => s + Math.max(0, w), 0);
    if (total <= 0) throw new Error('weighted pick with no positive weight');
    let r = this.next() * total;
    for (const [v, w] of choices) {
      if (w <= 0) continue;
      r -= w;
      if (r < 0) return v;
    }
    return choices.filter(([, w]) => w > 0).at(-1)![0];
  }

  /** A new generator whose sequence depends only on this seed and `salt` (for independent streams). */
  fork(salt: number): Prng {
    return new Prng((Math.imul(this.state ^ 0x9e3779b9, 0x85ebca6b) + salt) >>> 0);
  }
}
