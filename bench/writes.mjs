// Write benchmark: upserts into a 1M-row table held in 10 Parquet files, end to end through
// query-api → Redis Stream → write-applier → files (and monitor → cacher → query-api for visibility).
// Baseline in the same run: DuckDB alone applying the same upserts to the same files in one process.
import { cp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { REDIS_URL, fmt, freePort, median, percentile, printTable, sleep, startApp, deletePrefix, flashduckEnv } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const FILES = 10;
const BATCHES = Number(process.env.BENCH_WRITE_BATCHES ?? 50);
const BATCH_ROWS = 1000;
const VISIBLE_RUNS = Number(process.env.BENCH_VISIBLE_RUNS ?? 15);
const POLL_MS = Number(process.env.MONITOR_POLL_MS ?? 1000);

const work = path.join(os.tmpdir(), `flashduck-bench-writes-${process.pid}`);
const prefix = `fdbenchw-${process.pid}`;
const seedDir = path.join(work, 'seed');
const dataDir = path.join(work, 'data');

let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

async function generate() {
  await mkdir(path.join(seedDir, 'ledger'), { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const per = ROWS / FILES;
  for (let f = 0; f < FILES; f++) {
    await c.run(`COPY (SELECT i AS id, 'acct-' || i AS name, (i % 1000)::BIGINT AS balance, 'r' || (i % 7) AS region
      FROM range(${f * per}, ${(f + 1) * per}) r(i)) TO '${seedDir}/ledger/part-${f}.parquet' (FORMAT parquet)`);
  }
  c.closeSync();
  db.closeSync();
}

function makeBatches() {
  return Array.from({ length: BATCHES }, (_, b) =>
    Array.from({ length: BATCH_ROWS }, () => {
      // 90% updates of existing keys spread over every file, 10% new keys.
      const id = rand() < 0.9 ? Math.floor(rand() * ROWS) : ROWS + Math.floor(rand() * ROWS);
      return { id, balance: b * 1000 + Math.floor(rand() * 1000), name: `w${b}` };
    }),
  );
}

/** DuckDB alone: the same upserts merged into the same 10 files (rewritten once, like one applier batch). */
async function duckdbBaseline(dir, batches) {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const t0 = performance.now();
  const rows = new Map();
  for (const b of batches) for (const r of b) rows.set(r.id, r);
  await c.run('CREATE TABLE chg (id BIGINT, balance BIGINT, name VARCHAR)');
  const app = await c.createAppender('chg');
  for (const r of rows.values()) {
    app.appendBigInt(BigInt(r.id));
    app.appendBigInt(BigInt(r.balance));
    app.appendVarchar(r.name);
    app.endRow();
  }
  app.flushSync();
  app.closeSync();
  for (let f = 0; f < FILES; f++) {
    const file = `${dir}/ledger/part-${f}.parquet`;
    await c.run(`COPY (SELECT s.id, coalesce(m.name, s.name) AS name, coalesce(m.balance, s.balance) AS balance, s.region
      FROM read_parquet('${file}') s LEFT JOIN chg m USING (id) ORDER BY s.id) TO '${file}.tmp' (FORMAT parquet, COMPRESSION zstd)`);
  }
  await c.run(`COPY (SELECT * FROM chg WHERE id >= ${ROWS}) TO '${dir}/ledger/new.parquet.tmp' (FORMAT parquet, COMPRESSION zstd)`);
  const ms = performance.now() - t0;
  c.closeSync();
  db.closeSync();
  return ms;
}

async function post(port, p, body) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function main() {
  await rm(work, { recursive: true, force: true });
  console.log(`# Writes: upserts of ${BATCH_ROWS.toLocaleString('en')} rows per write into a ${ROWS.toLocaleString('en')}-row table in ${FILES} Parquet files (poll ${POLL_MS} ms)\n`);
  await generate();
  const batches = makeBatches();
  await cp(seedDir, path.join(work, 'baseline'), { recursive: true });
  const baseMs = await duckdbBaseline(path.join(work, 'baseline'), batches);

  await cp(seedDir, dataDir, { recursive: true });
  const port = await freePort();
  const env = {
    ...flashduckEnv(prefix, dataDir, work),
    MONITOR_POLL_MS: String(POLL_MS),
    QUERY_API_PORT: String(port),
  };
  const apps = [
    await startApp('cacher', env, /cacher started/),
    await startApp('monitor', env, /monitor started/),
    await startApp('query-api', env, /query-api listening/),
  ];
  const redis = new Redis(REDIS_URL);
  try {
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${port}/v1/tables/ledger`);
      if (r.ok && (await r.json()).rows === ROWS) break;
      await sleep(100);
    }
    // Throughput: every write queued first, then one applier drains them (its batches are what it sustains).
    const ids = [];
    const t0 = performance.now();
    for (const b of batches) ids.push((await post(port, '/v1/tables/ledger/upsert', { key: ['id'], rows: b })).writeId);
    const enqueuedMs = performance.now() - t0;
    apps.push(await startApp('write-applier', env, /write-applier started/));
    const tApply = performance.now();
    const lastStream = ids[ids.length - 1].split('.')[1];
    while ((await redis.get(`${prefix}:{ledger}:writes-applied`)) !== lastStream) await sleep(20);
    const applyMs = performance.now() - tApply;
    const rowsApplied = BATCHES * BATCH_ROWS;

    // Latency: one write at a time, from the POST to the moment query-api serves a snapshot containing it.
    const visible = [];
    for (let i = 0; i < VISIBLE_RUNS; i++) {
      const rows = Array.from({ length: BATCH_ROWS }, () => ({ id: Math.floor(rand() * ROWS), balance: i }));
      const t = performance.now();
      const { writeId } = await post(port, '/v1/tables/ledger/upsert', { key: ['id'], rows });
      for (;;) {
        const s = await (await fetch(`http://127.0.0.1:${port}/v1/writes/${writeId}`)).json();
        if (s.status === 'visible') break;
        if (s.status === 'failed') throw new Error(s.error);
        await sleep(10);
      }
      visible.push(performance.now() - t);
    }

    const rate = rowsApplied / (applyMs / 1000);
    const baseRate = rowsApplied / (baseMs / 1000);
    printTable(
      ['scenario', 'baseline (same run)', 'FlashDuck', 'ratio', 'goal', 'met'],
      [
        [`apply ${BATCHES} writes x ${BATCH_ROWS} rows (queued → in the files)`, `DuckDB merge+rewrite alone: ${fmt(baseMs)} (${Math.round(baseRate).toLocaleString('en')} rows/s)`, `${fmt(applyMs)} (${Math.round(rate).toLocaleString('en')} rows/s)`, `${(applyMs / baseMs).toFixed(2)}x`, '≥ 20,000 rows/s', rate >= 20_000 ? 'yes' : 'NO'],
        ['enqueue (HTTP 202) per write', '', fmt(enqueuedMs / BATCHES), '', '', ''],
        ['write → visible p50', `poll interval ${POLL_MS} ms`, fmt(median(visible)), '', `≤ 1 s + poll = ${fmt(1000 + POLL_MS)}`, median(visible) <= 1000 + POLL_MS ? 'yes' : 'NO'],
        ['write → visible p99', '', fmt(percentile(visible, 99)), '', '', ''],
      ],
    );
  } finally {
    redis.disconnect();
    for (const a of apps.reverse()) await a.stop();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
