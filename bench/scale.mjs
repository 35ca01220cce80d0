// Scale benchmark: a generated table of BENCH_SCALE_ROWS rows (default 10M) in 50 CSV files (>1 GB) through
// the whole pipeline — rebuild, chunked snapshot, two query-api replicas, queries, export — with every
// process's peak RSS. Baseline in the same run: DuckDB alone loading the folder.
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { REDIS_URL, deletePrefix, fmt, freePort, httpQuery, median, peakRss, printTable, sleep, stageScaleTable, startApp, flashduckEnv } from './lib.mjs';

const ROWS = Number(process.env.BENCH_SCALE_ROWS ?? 10_000_000);
const FILES = 50;
const work = path.join(os.tmpdir(), `flashduck-bench-scale-${process.pid}`);
const staged = path.join(work, 'staged');
const dataDir = path.join(work, 'data');
const prefix = `fdbenchs-${process.pid}`;

async function main() {
  await rm(work, { recursive: true, force: true });
  await mkdir(staged, { recursive: true });
  await mkdir(path.join(dataDir, 'big'), { recursive: true });
  console.log(`# Scale: ${ROWS.toLocaleString('en')} rows x 10 columns in ${FILES} CSV files\n`);
  const csvBytes = await stageScaleTable(staged, ROWS, FILES);

  // Baseline: DuckDB alone loads the folder into memory; its memory use is the table's in-memory size.
  const base = await DuckDBInstance.create(':memory:');
  const b = await base.connect();
  const tb = performance.now();
  await b.run(`CREATE TABLE big AS SELECT * FROM read_csv('${staged}/*.csv', union_by_name=true)`);
  const duckLoad = performance.now() - tb;
  const mem = Number((await b.runAndReadAll('SELECT sum(memory_usage_bytes) FROM duckdb_memory()')).getRowsJS()[0][0]) / 1024 / 1024;
  b.closeSync();
  base.closeSync();

  const ports = [await freePort(), await freePort()];
  const env = {
    ...flashduckEnv(prefix, dataDir, work),
    MONITOR_POLL_MS: '1000',
    EXPORTER_DEBOUNCE_MS: '0',
    FLASHDUCK_SHUTDOWN_MS: '60000',
  };
  const apps = {
    cacher: await startApp('cacher', env, /cacher started/),
    monitor: await startApp('monitor', env, /monitor started/),
    'query-api 1': await startApp('query-api', { ...env, QUERY_API_PORT: String(ports[0]) }, /query-api listening/),
    'query-api 2': await startApp('query-api', { ...env, QUERY_API_PORT: String(ports[1]), QUERY_API_CACHE_DIR: path.join(work, 'cache2') }, /query-api listening/),
    exporter: await startApp('exporter', env, /exporter started/),
  };
  const redis = new Redis(REDIS_URL);
  try {
    for (const f of (await readdir(staged)).sort()) await rename(path.join(staged, f), path.join(dataDir, 'big', f));
    const t0 = performance.now();
    const synced = [];
    for (const port of ports) {
      for (;;) {
        try {
          if ((await httpQuery(port, 'SELECT count(*) AS n FROM big')).rows[0].n === ROWS) break;
        } catch {}
        if (performance.now() - t0 > 900_000) throw new Error('the table never became queryable');
        await sleep(50);
      }
      synced.push(performance.now() - t0);
    }
    const meta = JSON.parse(await redis.hget(`${prefix}:{big}:meta`, 'json'));
    const times = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await httpQuery(ports[i % 2], `SELECT region, count(*) AS n, avg(amount) AS a FROM big WHERE quantity > ${i} GROUP BY region`);
      times.push(performance.now() - t);
    }
    for (;;) {
      const e = await redis.hgetall(`${prefix}:{big}:exported`);
      if (Number(e.version) === meta.version) break;
      if (performance.now() - t0 > 1_800_000) throw new Error('the export never finished');
      await sleep(200);
    }
    const exported = await redis.hgetall(`${prefix}:{big}:exported`);
    const rss = {};
    for (const [name, app] of Object.entries(apps)) rss[name] = await peakRss(app.child.pid);
    const worst = Math.max(rss['query-api 1'].own, rss['query-api 2'].own);
    printTable(
      ['scenario', 'baseline (same run)', 'FlashDuck', 'ratio', 'goal', 'met'],
      [
        [`${ROWS.toLocaleString('en')} rows, ${(csvBytes / 1e9).toFixed(2)} GB of CSV: landed → queryable on both replicas`, `DuckDB load of the folder: ${fmt(duckLoad)}`, `${fmt(synced[0])} / ${fmt(synced[1])}`, `${(synced[1] / duckLoad).toFixed(2)}x`, '≤ 1.5x', synced[1] <= 1.5 * duckLoad ? 'yes' : 'NO'],
        ['peak RSS of a query-api replica', `table in DuckDB's memory: ${mem.toFixed(0)} MB`, `${worst.toFixed(0)} MB`, `${(worst / mem).toFixed(2)}x`, '≤ 2x', worst <= 2 * mem ? 'yes' : 'NO'],
        ['GROUP BY over the table (distinct queries), p50', '', fmt(median(times)), '', '', ''],
        ['snapshot', '', `${(meta.bytes / 1e6).toFixed(0)} MB in ${meta.parts.length} parts, built in ${meta.buildMs} ms`, '', '', ''],
        ['export', '', `${(Number(exported.bytes) / 1e6).toFixed(0)} MB in ${exported.ms} ms`, '', '', ''],
      ],
    );
    console.log('\npeak RSS (MB):');
    printTable(['process', 'peak RSS', 'largest child (reader process)'], Object.entries(rss).map(([n, r]) => [n, r.own.toFixed(0), r.children ? r.children.toFixed(0) : '-']));
  } finally {
    redis.disconnect();
    for (const a of Object.values(apps).reverse()) await a.stop();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
