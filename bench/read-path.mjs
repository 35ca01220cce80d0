// Read path benchmark: a generated 1M-row x 10-column table in 10 CSV files.
// Side by side, in one run: FlashDuck (monitor + cacher + query-api as separate processes, one Redis)
// and DuckDB alone (loading the folder; re-scanning it for every query).
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { fmt, freePort, httpQuery, median, percentile, printTable, sleep, startApp, deletePrefix, flashduckEnv, generateCsvTable } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const FILES = 10;
const QUERY_RUNS = Number(process.env.BENCH_QUERY_RUNS ?? 200);
const SCAN_RUNS = Number(process.env.BENCH_SCAN_RUNS ?? 10);
const POLL_MS = Number(process.env.MONITOR_POLL_MS ?? 1000);
const SETTLE_MS = Number(process.env.MONITOR_SETTLE_MS ?? 500);
// Every run asks something new (the result cache must not answer): these measure DuckDB over the snapshot.
const GROUP_BY = (i) => `SELECT region, count(*) AS n, avg(amount) AS avg_amount FROM bench WHERE quantity <> ${-1 - i} GROUP BY region ORDER BY region`;
const POINT = (i) => `SELECT * FROM bench WHERE id = ${(424242 + i * 7919) % ROWS}`;

const work = path.join(os.tmpdir(), `flashduck-bench-${process.pid}`);
const staging = path.join(work, 'staging');
const dataDir = path.join(work, 'data');
const prefix = `fdbench-${process.pid}`;

async function generate() {
  await generateCsvTable(staging, ROWS, FILES);
}

async function duckdbLoad(dir) {
  const times = [];
  for (let i = 0; i < 3; i++) {
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    const t0 = performance.now();
    await c.run(`CREATE TABLE bench AS SELECT * FROM read_csv('${dir}/*.csv', union_by_name=true)`);
    times.push(performance.now() - t0);
    c.closeSync();
    db.closeSync();
  }
  return median(times);
}

async function duckdbRescan(dir, sql, runs) {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await c.run(`CREATE VIEW bench AS SELECT * FROM read_csv('${dir}/*.csv', union_by_name=true)`);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await c.runAndReadAll(sql(i));
    times.push(performance.now() - t0);
  }
  c.closeSync();
  db.closeSync();
  return times;
}

async function httpTimes(port, sql, runs) {
  for (let i = 0; i < 10; i++) await httpQuery(port, sql(1_000_000 + i)); // warm-up
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await httpQuery(port, sql(i));
    times.push(performance.now() - t0);
  }
  return times;
}

async function main() {
  await rm(work, { recursive: true, force: true });
  console.log(`# Read path: ${ROWS.toLocaleString('en')} rows x 10 columns in ${FILES} CSV files (poll ${POLL_MS} ms, settle ${SETTLE_MS} ms)\n`);
  await generate();
  const duckLoad = await duckdbLoad(staging);

  await mkdir(dataDir, { recursive: true });
  const port = await freePort();
  const env = {
    ...flashduckEnv(prefix, dataDir, work),
    MONITOR_POLL_MS: String(POLL_MS),
    MONITOR_SETTLE_MS: String(SETTLE_MS),
    QUERY_API_PORT: String(port),
    ...(process.env.CACHER_SNAPSHOT_FORMAT ? { CACHER_SNAPSHOT_FORMAT: process.env.CACHER_SNAPSHOT_FORMAT } : {}),
  };
  const apps = [
    await startApp('cacher', env, /cacher started/),
    await startApp('monitor', env, /monitor started/),
    await startApp('query-api', env, /query-api listening/),
  ];
  try {
    await mkdir(path.join(dataDir, 'bench'));
    for (const f of (await readdir(staging)).sort()) await rename(path.join(staging, f), path.join(dataDir, 'bench', f));
    const landed = performance.now();
    let synced = 0;
    for (;;) {
      try {
        const r = await httpQuery(port, 'SELECT count(*) AS n FROM bench');
        if (r.rows[0].n === ROWS) {
          synced = performance.now() - landed;
          break;
        }
      } catch {
        /* not there yet */
      }
      if (performance.now() - landed > 120_000) throw new Error('table never became queryable');
      await sleep(10);
    }
    const meta = await (await fetch(`http://127.0.0.1:${port}/v1/tables/bench`)).json();
    if (process.env.BENCH_TRACE) {
      const landedAt = Date.now() - (performance.now() - landed);
      for (const a of apps) {
        for (const line of a.log().split('\n')) {
          const m = /"time":"([^"]+)".*"msg":"([^"]+)"/.exec(line);
          if (m && /bench|scan diff|rebuild|snapshot|serving|fragments/.test(line)) {
            const extra = /"(loadMs":.*"storeMs":\d+)/.exec(line)?.[1] ?? '';
            console.log(`  +${Math.round(Date.parse(m[1]) - landedAt)} ms ${m[2]} ${extra}`);
          }
        }
      }
    }
    const fdGroup = await httpTimes(port, GROUP_BY, QUERY_RUNS);
    const fdPoint = await httpTimes(port, POINT, QUERY_RUNS);
    const scanDir = path.join(dataDir, 'bench');
    const dkGroup = await duckdbRescan(scanDir, GROUP_BY, SCAN_RUNS);
    const dkPoint = await duckdbRescan(scanDir, POINT, SCAN_RUNS);

    const syncGoal = 1.5 * duckLoad + POLL_MS;
    console.log(`version: ${meta.snapshot.parts.length} part(s) (${meta.snapshot.format}), ${(meta.snapshot.bytes / 1e6).toFixed(1)} MB, cacher build ${meta.snapshot.buildMs} ms\n`);
    printTable(
      ['scenario', 'baseline (same run)', 'FlashDuck', 'ratio', 'goal', 'met'],
      [
        ['last file landed → queryable via query-api', `DuckDB load of the folder: ${fmt(duckLoad)}`, fmt(synced), `${(synced / duckLoad).toFixed(2)}x`, `≤ 1.5 x load + poll = ${fmt(syncGoal)}`, synced <= syncGoal ? 'yes' : 'NO'],
        ['GROUP BY p50 (HTTP, JSON)', `DuckDB re-scan p50 ${fmt(median(dkGroup))}`, fmt(median(fdGroup)), `${(median(dkGroup) / median(fdGroup)).toFixed(0)}x faster`, '≥ 30x faster', median(dkGroup) / median(fdGroup) >= 30 ? 'yes' : 'NO'],
        ['GROUP BY p99', `p99 ${fmt(percentile(dkGroup, 99))}`, fmt(percentile(fdGroup, 99)), `${(percentile(dkGroup, 99) / percentile(fdGroup, 99)).toFixed(0)}x faster`, '', ''],
        ['point query p50 (HTTP, JSON)', `DuckDB re-scan p50 ${fmt(median(dkPoint))}`, fmt(median(fdPoint)), `${(median(dkPoint) / median(fdPoint)).toFixed(0)}x faster`, '≥ 30x faster', median(dkPoint) / median(fdPoint) >= 30 ? 'yes' : 'NO'],
        ['point query p99', `p99 ${fmt(percentile(dkPoint, 99))}`, fmt(percentile(fdPoint, 99)), `${(percentile(dkPoint, 99) / percentile(fdPoint, 99)).toFixed(0)}x faster`, '', ''],
      ],
    );
  } finally {
    for (const a of apps.reverse()) await a.stop();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
