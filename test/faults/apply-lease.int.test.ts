import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, post, rows, waitFor } from '../helpers.js';
import { startStack, type Stack } from '../stack.js';

const LEASE_MS = 500;
const ROWS = 4_000_000;

/**
 * The write-applier's lease on a table is renewed while a batch runs: a batch that takes longer than the lease's TTL
 * (rewriting a large file) is applied once, not refused at its end and started over forever.
 */
describe('a write batch that outlasts the apply lease', () => {
  let stack: Stack;
  let applier: AppProcess;

  beforeAll(async () => {
    stack = await startStack('applylease', {}, async (dir) => {
      const db = await DuckDBInstance.create(':memory:');
      const conn = await db.connect();
      await conn.run(`COPY (SELECT range AS id, 'acct-' || range AS name, (range * 0.5)::DOUBLE AS balance FROM range(${ROWS})) TO '${path.join(dir, 'ledger.parquet')}' (FORMAT parquet)`);
      conn.closeSync();
      db.closeSync();
    });
    await waitFor('ledger served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM ledger'))[0]?.n === ROWS, 60_000);
    applier = AppProcess.start('write-applier', { ...stack.env, WRITER_LEASE_MS: String(LEASE_MS), WRITER_POLL_MS: '100' });
    await applier.waitForLog(/"msg":"write-applier started"/);
  }, 90_000);
  afterAll(async () => {
    await applier?.kill('SIGTERM');
    await stack?.stop();
  });

  it('is applied once, with the lease kept the whole time', async () => {
    const r = await post(stack.api.port, '/v1/tables/ledger/upsert', { key: ['id'], rows: [{ id: 7, name: 'changed', balance: -1 }, { id: ROWS, name: 'new', balance: 1 }] });
    expect(r.status).toBe(202);
    const applied = await applier.waitForLog(/"msg":"writes applied"/, 60_000);
    // The premise: the batch took longer than the lease lives unrenewed.
    expect(JSON.parse(applied).ms).toBeGreaterThan(2 * LEASE_MS);
    expect(applier.logs.filter((l) => /lost the apply lease|apply lease lost|applying writes failed/.test(l))).toEqual([]);
    expect(applier.logs.filter((l) => l.includes('"msg":"writes applied"'))).toHaveLength(1);
    await waitFor('the write visible', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM ledger'))[0]?.n === ROWS + 1, 60_000);
    expect(await rows(stack.api.port, 'SELECT id, name, balance FROM ledger WHERE id IN (6, 7) OR id >= ' + ROWS + ' ORDER BY id')).toEqual([
      { id: 6, name: 'acct-6', balance: 3 },
      { id: 7, name: 'changed', balance: -1 },
      { id: ROWS, name: 'new', balance: 1 },
    ]);
    // In the files too (the new key goes to a file of its own): the folder is the source of truth.
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const onDisk = (await conn.runAndReadAll(`SELECT count(*)::INTEGER AS n, max(name) FILTER (WHERE id = 7) AS name FROM read_parquet('${stack.dataDir}/**/*.parquet')`)).getRowObjectsJson();
    conn.closeSync();
    db.closeSync();
    expect(onDisk).toEqual([{ n: ROWS + 1, name: 'changed' }]);
  }, 120_000);
});
