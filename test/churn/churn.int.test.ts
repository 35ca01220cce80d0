import { describe, expect, it } from 'vitest';
import { DEFAULTS, replayCommand, type ChurnOptions } from './options.js';
import { runChurn, type ChurnResult } from './run-churn.js';

/**
 * The seeded churn checker (see model.ts for the rules) on a short budget. The seeds are fixed, so the
 * operations are the same on every run: seed 3 has every kind of file operation (two rename storms among
 * them); seed 143 adds writes through the API and a SIGKILL of the cacher and of one replica; seed 18 runs on a
 * private Redis that is SIGKILLed after 10 operations and comes back empty (4 writes before it, 3 after it,
 * three rename storms and slow writes around it).
 * `pnpm churn` runs longer and random seeds; a failure here prints the command that replays it.
 */
function explain(r: ChurnResult): string {
  const rules = r.distinct.map((v) => `${v.rule} ${v.table ?? ''} ${v.fid ?? ''} ×${v.count}: ${v.detail.split('\n')[0]}`);
  return `${r.violations} violation(s); replay: ${replayCommand(r.options)}\n${rules.slice(0, 15).join('\n')}`;
}

describe('churn: every answer of every replica is a state the files really had', () => {
  it('file churn over csv, tsv, json, ndjson, jsonl and parquet in two tables, two replicas', async () => {
    const options: ChurnOptions = { ...DEFAULTS, seed: 3, ops: 40, seconds: 30, replicas: 2 };
    const r = await runChurn(options);
    expect(r.violations, explain(r)).toBe(0);
    expect(r.merges, 'answers were checked across merges').toBeGreaterThan(0);
  }, 180_000);

  it('with writes through the API and a SIGKILL of the cacher and of a replica mid-run', async () => {
    const options: ChurnOptions = { ...DEFAULTS, seed: 143, ops: 30, seconds: 25, replicas: 2, writes: true, kill: true };
    const r = await runChurn(options);
    expect(r.violations, explain(r)).toBe(0);
  }, 180_000);

  it('with Redis killed mid-run and started again empty: replicas keep answering, versions start a new era, tables return whole', async () => {
    const options: ChurnOptions = { ...DEFAULTS, seed: 18, ops: 25, seconds: 20, replicas: 2, writes: true, redisLoss: true };
    const r = await runChurn(options);
    expect(r.violations, explain(r)).toBe(0);
  }, 180_000);
});
