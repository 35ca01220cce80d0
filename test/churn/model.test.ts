import { describe, expect, it } from 'vitest';
import { Model, VersionRules, WritesModel, type Rows, type TableAnswer } from './model.js';
import { Prng } from './prng.js';

const rows = (entries: Record<string, Rows>): TableAnswer => ({ kind: 'rows', rows: new Map(Object.entries(entries)) });
const rules = (findings: { rule: string }[]) => findings.map((f) => f.rule);

/** A model with lag 1000: f1 appended at t=1000 (3 → 5 rows), renamed at 5000, moved to beta at 8000. */
function history(): Model {
  const m = new Model(1000);
  m.set('f1', { table: 'alpha', path: 'alpha/a.csv', n: 3, s: 6, bad: false }, 0, 0, 10);
  m.set('f1', { table: 'alpha', path: 'alpha/a.csv', n: 5, s: 15, bad: false }, 1, 1000, 1005);
  m.set('f1', { table: 'alpha', path: 'alpha/b.csv', n: 5, s: 15, bad: false }, 2, 5000, 5001);
  m.set('f1', { table: 'beta', path: 'beta/b.csv', n: 5, s: 15, bad: false }, 3, 8000, 8002);
  return m;
}

describe('churn model: the rules an answer is judged by', () => {
  it('accepts the state before or after an append while the lag allows, never a state the file did not have', () => {
    const m = history();
    expect(m.checkTableAnswer('alpha', rows({ f1: { n: 3, s: 6 } }), { start: 1500, end: 1600 })).toEqual([]);
    expect(m.checkTableAnswer('alpha', rows({ f1: { n: 5, s: 15 } }), { start: 1500, end: 1600 })).toEqual([]);
    // Half of the append: 4 rows.
    expect(rules(m.checkTableAnswer('alpha', rows({ f1: { n: 4, s: 10 } }), { start: 1500, end: 1600 }))).toEqual(['state-never-existed']);
    // The old state more than the lag after the append ended.
    expect(rules(m.checkTableAnswer('alpha', rows({ f1: { n: 3, s: 6 } }), { start: 2100, end: 2200 }))).toEqual(['state-too-old']);
  });

  it('requires a file unchanged for longer than the lag, across a rename, and its table', () => {
    const m = history();
    expect(rules(m.checkTableAnswer('alpha', rows({}), { start: 3000, end: 3100 }))).toEqual(['stable-rows-hidden']);
    // The rename at 5000 keeps the rows: still required right after it.
    expect(rules(m.checkTableAnswer('alpha', rows({}), { start: 5200, end: 5300 }))).toEqual(['stable-rows-hidden']);
    expect(rules(m.checkTableAnswer('alpha', { kind: 'missing' }, { start: 5200, end: 5300 }))).toEqual(['table-vanished']);
    // Within the lag of the append, absence is allowed (the file is settling).
    expect(m.checkTableAnswer('alpha', rows({}), { start: 1500, end: 1600 })).toEqual([]);
  });

  it('lets a moved file show in its old table only within the lag, and requires it in the new one after it', () => {
    const m = history();
    expect(m.checkTableAnswer('alpha', rows({ f1: { n: 5, s: 15 } }), { start: 8500, end: 8600 })).toEqual([]);
    expect(rules(m.checkTableAnswer('alpha', rows({ f1: { n: 5, s: 15 } }), { start: 9100, end: 9200 }))).toEqual(['state-too-old']);
    expect(m.checkTableAnswer('beta', rows({}), { start: 8500, end: 8600 })).toEqual([]);
    expect(rules(m.checkTableAnswer('beta', rows({}), { start: 9100, end: 9200 }))).toEqual(['stable-rows-hidden']);
    expect(rules(m.checkTableAnswer('beta', rows({ f1: { n: 5, s: 15 }, f9: { n: 1, s: 1 } }), { start: 9100, end: 9200 }))).toEqual(['state-never-existed']);
  });

  it('does not count time the cacher was down towards the lag', () => {
    const m = history();
    m.addOutage(1100, 3000);
    expect(m.elapsed(1005, 2500)).toBe(95);
    expect(m.checkTableAnswer('alpha', rows({ f1: { n: 3, s: 6 } }), { start: 2500, end: 2600 })).toEqual([]);
    expect(rules(m.checkTableAnswer('alpha', rows({ f1: { n: 3, s: 6 } }), { start: 4000, end: 4100 }))).toEqual(['state-too-old']);
  });

  it('requires an unreadable file to be reported once the lag has passed, and a readable one never', () => {
    const m = history();
    m.set('f2', { table: 'alpha', path: 'alpha/bad.parquet', n: 0, s: 0, bad: true }, 4, 2000, 2001);
    expect(m.checkTableErrors('alpha', new Set(), { start: 2500, end: 2600 })).toEqual([]);
    expect(rules(m.checkTableErrors('alpha', new Set(), { start: 3500, end: 3600 }))).toEqual(['unreadable-file-not-reported']);
    expect(m.checkTableErrors('alpha', new Set(['alpha/bad.parquet']), { start: 3500, end: 3600 })).toEqual([]);
    expect(rules(m.checkTableErrors('alpha', new Set(['alpha/bad.parquet', 'alpha/a.csv']), { start: 3500, end: 3600 }))).toEqual(['readable-file-reported']);
    expect(rules(m.checkTableErrors('alpha', 'missing', { start: 3500, end: 3600 }))).toEqual(['table-vanished']);
    // An unreadable file never has rows: not required in answers.
    expect(m.checkTableAnswer('alpha', rows({ f1: { n: 5, s: 15 } }), { start: 3500, end: 3600 })).toEqual([]);
    expect(m.currentBadPaths('alpha')).toEqual(new Set(['alpha/bad.parquet']));
  });

  it('judges writes key by key against the values after some prefix of the writes sent', () => {
    const w = new WritesModel(new Map([[1, 'b1'], [2, 'b2']]));
    w.apply('upsert', [{ id: 1, v: 'w1' }, { id: 3, v: 'w1' }]);
    w.apply('delete', [{ id: 2 }]);
    expect(w.check([{ id: 1, v: 'b1' }, { id: 2, v: 'b2' }], 2)).toEqual([]);
    expect(w.check([{ id: 1, v: 'w1' }, { id: 3, v: 'w1' }], 2)).toEqual([]);
    expect(rules(w.check([{ id: 3, v: 'w1' }], 0))).toEqual(['write-value-never-existed']);
    expect(rules(w.check([{ id: 1, v: 'b1' }, { id: 1, v: 'w1' }], 2))).toEqual(['duplicate-key']);
    w.apply('upsert', [{ id: 1, v: 'w3' }]);
    w.retract();
    expect([...w.current()]).toEqual([[1, 'w1'], [3, 'w1']]);
    expect(w.diffNow([{ id: 1, v: 'w1' }])).toEqual(['id=3: missing (want "w1")']);
  });
});

describe('churn model: versions across a loss of Redis data', () => {
  const at = (t: number) => ({ start: t, end: t + 10 });

  it('without a loss: versions never go back, and a version has one content', () => {
    const v = new VersionRules();
    expect(v.check(0, 'alpha', 3, 'A', 'plain', at(100))).toEqual([]);
    expect(rules(v.check(0, 'alpha', 2, 'B', 'plain', at(200)))).toEqual(['version-went-back']);
    expect(rules(v.check(1, 'alpha', 3, 'X', 'uncached', at(300)))).toEqual(['same-version-different-rows']);
  });

  it('allows one drop to the rebuilt numbers after the restart, then monotonic again, never back to the old era', () => {
    const v = new VersionRules();
    expect(v.check(0, 'alpha', 5, 'A5', 'plain', at(100))).toEqual([]);
    v.redisLost(1000, new Map([['alpha', 6]]));
    // During the outage: still the old versions (and never lower).
    expect(v.check(0, 'alpha', 5, 'A5', 'plain', at(1500))).toEqual([]);
    // A drop before Redis was started again cannot be a rebuilt version.
    expect(rules(v.check(0, 'alpha', 1, 'R1', 'plain', at(1800)))).toEqual(['version-went-back']);
    v.redisRestarted(2500);
    expect(v.check(0, 'alpha', 6, 'A6', 'plain', at(2600))).toEqual([]); // a pre-loss version it had not shown yet
    expect(v.check(0, 'alpha', 1, 'R1', 'plain', at(3000))).toEqual([]); // the drop
    expect(v.rebuiltSince(0, 'alpha')).toBe(3010);
    expect(v.check(0, 'alpha', 2, 'R2', 'plain', at(3100))).toEqual([]);
    expect(rules(v.check(0, 'alpha', 1, 'R1', 'plain', at(3200)))).toEqual(['version-went-back']);
    // Back to the old build with a number the rebuilt era also has.
    expect(v.check(0, 'alpha', 5, 'R5', 'plain', at(3300))).toEqual([]);
    expect(rules(v.check(0, 'alpha', 5, 'A5', 'plain', at(3400)))).toEqual(['version-went-back']);
    // GET /v1/tables/<t> carries the publish time: a pre-loss build after rebuilt ones is going back.
    expect(rules(v.check(0, 'alpha', 6, null, 'errors', at(3500), 900))).toEqual(['version-went-back']);
  });

  it('compares contents within one era only, and tells the era by publish time, number or content', () => {
    const v = new VersionRules();
    expect(v.check(0, 'alpha', 2, 'A2', 'plain', at(100))).toEqual([]);
    expect(v.check(1, 'alpha', 1, 'A1', 'plain', at(100))).toEqual([]);
    v.redisLost(1000, new Map([['alpha', 2]]));
    v.redisRestarted(2000);
    // Replica 0: rebuilt version 2 has other rows than pre-loss version 2: a new era, not a violation.
    expect(v.check(0, 'alpha', 2, 'R2', 'plain', at(2500))).toEqual([]);
    expect(v.rebuiltSince(0, 'alpha')).toBe(2510);
    // Replica 1 still on pre-loss version 1, then the rebuilt version 2 (a number above its own).
    expect(v.check(1, 'alpha', 1, 'A1', 'plain', at(2600))).toEqual([]);
    expect(v.check(1, 'alpha', 2, 'R2', 'plain', at(2700))).toEqual([]);
    expect(v.rebuiltSince(1, 'alpha')).toBe(2710);
    // One rebuilt version, two contents.
    expect(rules(v.check(1, 'alpha', 2, 'Z', 'uncached', at(2800)))).toEqual(['same-version-different-rows']);
    // Above the last pre-loss number: rebuilt; the publish time says so too.
    const w = new VersionRules();
    w.redisLost(1000, new Map([['beta', 4]]));
    w.redisRestarted(2000);
    expect(w.check(0, 'beta', 5, 'B', 'plain', at(2100))).toEqual([]);
    expect(w.rebuiltSince(0, 'beta')).toBe(2110);
    expect(w.check(1, 'beta', 1, null, 'errors', at(2100), 2050)).toEqual([]);
    expect(w.rebuiltSince(1, 'beta')).toBe(2110);
  });

  it('accepts any subset of the writes lost with Redis, each whole, and requires every other write', () => {
    const w = new WritesModel(new Map([[1, 'b1'], [2, 'b2']]));
    w.apply('upsert', [{ id: 1, v: 'w1' }]);
    w.apply('upsert', [{ id: 2, v: 'w2' }, { id: 3, v: 'w2' }]);
    w.uncertain.add(2);
    w.apply('upsert', [{ id: 4, v: 'w3' }]);
    expect(w.diffNow([{ id: 1, v: 'w1' }, { id: 2, v: 'w2' }, { id: 3, v: 'w2' }, { id: 4, v: 'w3' }])).toEqual([]);
    expect(w.diffNow([{ id: 1, v: 'w1' }, { id: 2, v: 'b2' }, { id: 4, v: 'w3' }])).toEqual([]);
    // Half of write 2.
    expect(w.diffNow([{ id: 1, v: 'w1' }, { id: 2, v: 'b2' }, { id: 3, v: 'w2' }, { id: 4, v: 'w3' }]).length).toBeGreaterThan(0);
    // Write 1 was applied before the loss; write 3 was queued after it: both must show.
    expect(w.diffNow([{ id: 1, v: 'b1' }, { id: 2, v: 'b2' }, { id: 4, v: 'w3' }]).length).toBeGreaterThan(0);
    expect(w.diffNow([{ id: 1, v: 'w1' }, { id: 2, v: 'b2' }]).length).toBeGreaterThan(0);
  });

  it('counts overlapping outages once', () => {
    const m = new Model(1000);
    m.addOutage(100, 300);
    m.addOutage(200, 500);
    expect(m.elapsed(0, 1000)).toBe(600);
    expect(m.elapsed(250, 400)).toBe(0);
  });
});

describe('churn PRNG', () => {
  it('gives the same sequence for the same seed', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 5 }, () => a.int(0, 1000));
    expect(Array.from({ length: 5 }, () => b.int(0, 1000))).toEqual(xs);
    expect(new Prng(43).int(0, 1000)).not.toBe(xs[0]);
  });
});
