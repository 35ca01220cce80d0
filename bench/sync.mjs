// Sync cost: a table of BENCH_SYNC_ROWS rows (default 3M) x 10 columns in BENCH_SYNC_FILES CSV files (default 30)
// through monitor, cacher and two query-api replicas on a private redis-server (so its byte counters count
// only this run). Measured: landed → queryable on both replicas against DuckDB's own load of the folder (same
// run), bytes Redis sent for the initial sync, for the merges after it, and for a 1% append (one new file);
// the append's visible time; part bytes each replica fetched; a distinct GROUP BY over HTTP against the same
// query on one in-memory DuckDB table; Redis used_memory against the table's compressed size; peak RSS.
import { spawn } from 'node:child_process';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { SCALE_TABLE_SQL, fmt, freePort, httpQuery, median, peakRss, cpuSeconds, printTable, sleep, stageScaleTable, startApp } from './lib.mjs';
import { stackEnv } from '@flashduck/core/testing';

const ROWS = Number(process.env.BENCH_SYNC_ROWS ?? 3_000_000);
const FILES = Number(process.env.BENCH_SYNC_FILES ?? 30);
const work = path.join(process.env.BENCH_SYNC_DIR ?? os.tmpdir(), `flashduck-bench-sync-${process.pid}`);
const staged = path.join(work, 'staged');
const dataDir = path.join(work, 'data');
const prefix = 'fdsync';
const MB = (b) => `${(b / 1e6).toFixed(1)} MB`;
// BENCH_SYNC_EXPORTER=1 runs an exporter beside them (it exports every version, competing for the same cores).
const WITH_EXPORTER = process.env.BENCH_SYNC_EXPORTER === '1';

const GROUP_BY = (i) => `SELECT customer_id % ${100 + i} AS k, count(*) AS n, sum(amount) AS s FROM big GROUP BY k ORDER BY k LIMIT 5`;

async function startRedis(port) {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      return { child, redis };
    } catch {
      redis.disconnect();
      await sleep(50);
    }
  }
  throw new Error('redis-server did not start');
}

const stat1 = async (redis, field, section = 'stats') => Number(new RegExp(`${field}:(\\d+)`).exec(await redis.info(section))?.[1] ?? 0);
const sentBytes = (redis) => stat1(redis, 'total_net_output_bytes');

/** Sum of a counter over a replica's /metrics. */
async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

async function waitCount(ports, n, t0, limitMs) {
  const at = [];
  for (const port of ports) {
    for (;;) {
      try {
        if ((await httpQuery(port, 'SELECT count(*) AS n FROM big')).rows[0].n === n) break;
      } catch {}
      if (performance.now() - t0 > limitMs) throw new Error(`${n} rows never became queryable`);
      await sleep(20);
    }
    at.push(performance.now() - t0);
  }
  return at;
}

async function main() {
  await rm(work, { recursive: true, force: true });
  await mkdir(staged, { recursive: true });
  await mkdir(path.join(dataDir, 'big'), { recursive: true });
  console.log(`\n# Sync cost: ${ROWS.toLocaleString('en')} rows x 10 columns in ${FILES} CSV files, then a 1% append\n`);
  const csvBytes = await stageScaleTable(staged, ROWS, FILES);
  const appendRows = Math.round(ROWS / 100);
  const gen = await DuckDBInstance.create(':memory:');
  const g = await gen.connect();
  await g.run(`COPY (${SCALE_TABLE_SQL(ROWS, ROWS + appendRows)}) TO '${work}/append.csv' (HEADER)`);
  g.closeSync();
  gen.closeSync();

  // Baselines: DuckDB alone loads the folder into memory, and answers the GROUP BYs on that one table.
  const base = await DuckDBInstance.create(':memory:');
  const b = await base.connect();
  const tb = performance.now();
  const cpuBase = process.cpuUsage();
  await b.run(`CREATE TABLE big AS SELECT * FROM read_csv('${staged}/*.csv', union_by_name=true)`);
  const duckLoad = performance.now() - tb;
  const duckCpu = process.cpuUsage(cpuBase);
  const duckLoadCpu = (duckCpu.user + duckCpu.system) / 1e6;
  // The same load with types from every row (sample_size=-1), as FlashDuck's readers type a file: with DuckDB's
  // default 20,480-row sample a later `1.5` in an integer column is silently read as 2.
  await b.run('DROP TABLE big');
  const tw = performance.now();
  const cpuWhole = process.cpuUsage();
  await b.run(`CREATE TABLE big AS SELECT * FROM read_csv('${staged}/*.csv', union_by_name=true, sample_size=-1)`);
  const duckLoadWhole = performance.now() - tw;
  const wholeCpu = process.cpuUsage(cpuWhole);
  const duckLoadWholeCpu = (wholeCpu.user + wholeCpu.system) / 1e6;
  const baseGroup = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    await b.runAndReadAll(GROUP_BY(i));
    baseGroup.push(performance.now() - t);
  }
  b.closeSync();
  base.closeSync();

  const redisPort = await freePort();
  const { child: redisChild, redis } = await startRedis(redisPort);
  const ports = [await freePort(), await freePort()];
  const env = {
    ...stackEnv(prefix, dataDir, work, `redis://127.0.0.1:${redisPort}`),
    MONITOR_POLL_MS: '200',
    MONITOR_SETTLE_MS: '200',
    QUERY_API_REFRESH_MS: '1000',
    FLASHDUCK_SHUTDOWN_MS: '60000',
  };
  const apps = {};
  try {
    apps.cacher = await startApp('cacher', env, /cacher started/);
    apps.monitor = await startApp('monitor', env, /monitor started/);
    apps['query-api 1'] = await startApp('query-api', { ...env, QUERY_API_PORT: String(ports[0]), QUERY_API_CACHE_DIR: path.join(work, 'cache1') }, /query-api listening/);
    apps['query-api 2'] = await startApp('query-api', { ...env, QUERY_API_PORT: String(ports[1]), QUERY_API_CACHE_DIR: path.join(work, 'cache2') }, /query-api listening/);
    if (WITH_EXPORTER) apps.exporter = await startApp('exporter', env, /exporter started/);

    // Initial sync: every file lands at once.
    const sent0 = await sentBytes(redis);
    const fetched0 = await Promise.all(ports.map((p) => metric(p, 'flashduck_query_part_bytes_fetched_total')));
    const cpuPids = { ...Object.fromEntries(Object.entries(apps).map(([n, a]) => [n, a.child.pid])), redis: redisChild.pid };
    const cpu0 = Object.fromEntries(await Promise.all(Object.entries(cpuPids).map(async ([n, pid]) => [n, await cpuSeconds(pid)])));
    for (const f of (await readdir(staged)).sort()) await rename(path.join(staged, f), path.join(dataDir, 'big', f));
    const t0 = performance.now();
    const synced = await waitCount(ports, ROWS, t0, 1_800_000);
    const syncSent = (await sentBytes(redis)) - sent0;
    const syncCpu = Object.fromEntries(await Promise.all(Object.entries(cpuPids).map(async ([n, pid]) => [n, await cpuSeconds(pid).then((c) => ({ own: c.own - cpu0[n].own, children: c.children - cpu0[n].children }))])));
    if (process.env.BENCH_TRACE) {
      const landedAt = Date.now() - (performance.now() - t0);
      for (const [name, a] of Object.entries(apps)) {
        for (const line of a.log().split('\n')) {
          const m = /"time":"([^"]+)".*"msg":"([^"]+)"/.exec(line);
          if (m && /scan diff|rebuild|snapshot published|serving|merged/.test(line)) console.log(`  +${Math.round(Date.parse(m[1]) - landedAt)} ms ${name}: ${m[2]} ${/"(readMs".*?)(,"msg|})/.exec(line)?.[1] ?? /"(fetchMs".*?)(,"msg|})/.exec(line)?.[1] ?? ''}`);
        }
      }
    }
    const syncFetched = (await Promise.all(ports.map((p) => metric(p, 'flashduck_query_part_bytes_fetched_total')))).map((v, i) => v - fetched0[i]);
    const firstMeta = JSON.parse(await redis.hget(`${prefix}:{big}:meta`, 'json'));

    // Merges after it: until the table has at most CACHER_MERGE_MAX_PARTS (16) parts, its version stays the same
    // for 3 s, and both replicas serve it.
    const tm = performance.now();
    let last = firstMeta.version;
    for (let still = performance.now(); ; await sleep(200)) {
      const m = JSON.parse(await redis.hget(`${prefix}:{big}:meta`, 'json'));
      if (m.version !== last) [last, still] = [m.version, performance.now()];
      if (m.parts.length <= 16 && performance.now() - still >= 3_000) break;
      if (performance.now() - tm > 900_000) throw new Error('merges never settled');
    }
    for (const port of ports) {
      for (;;) {
        const t = await (await fetch(`http://127.0.0.1:${port}/v1/tables/big`)).json();
        if (t.version === last) break;
        await sleep(100);
      }
    }
    const settled = JSON.parse(await redis.hget(`${prefix}:{big}:meta`, 'json'));
    const mergeCpu = Object.fromEntries(await Promise.all(Object.entries(cpuPids).map(async ([n, pid]) => [n, await cpuSeconds(pid).then((c) => c.own + c.children - cpu0[n].own - cpu0[n].children - syncCpu[n].own - syncCpu[n].children)])));
    const mergeSent = (await sentBytes(redis)) - sent0 - syncSent;
    const mergeMs = performance.now() - tm - 3_000;

    // Queries: distinct GROUP BYs over HTTP.
    const fdGroup = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await httpQuery(ports[i % 2], GROUP_BY(i));
      fdGroup.push(performance.now() - t);
    }

    // A 1% append: one new file.
    const sent1 = await sentBytes(redis);
    const fetched1 = await Promise.all(ports.map((p) => metric(p, 'flashduck_query_part_bytes_fetched_total')));
    await rename(path.join(work, 'append.csv'), path.join(dataDir, 'big', 'append.csv'));
    const ta = performance.now();
    const visible = await waitCount(ports, ROWS + appendRows, ta, 600_000);
    const appendSent = (await sentBytes(redis)) - sent1;
    const appendFetched = (await Promise.all(ports.map((p) => metric(p, 'flashduck_query_part_bytes_fetched_total')))).map((v, i) => v - fetched1[i]);
    const appended = JSON.parse(await redis.hget(`${prefix}:{big}:meta`, 'json'));
    const newPart = appended.parts.find((p) => !settled.parts.some((q) => q.id === p.id));

    let exportRow = null;
    if (WITH_EXPORTER) {
      for (const deadline = performance.now() + 900_000; ; await sleep(200)) {
        const e = await redis.hgetall(`${prefix}:{big}:exported`);
        if (Number(e.version) >= appended.version) {
          exportRow = [`export of the last version (${Number(e.rows).toLocaleString('en')} rows)`, '', `${MB(Number(e.bytes))} in ${fmt(Number(e.ms))}`, '', '', ''];
          break;
        }
        if (performance.now() > deadline) throw new Error('the export never caught up');
      }
    }
    const usedMemory = await stat1(redis, 'used_memory', 'memory');
    const rss = {};
    for (const [name, app] of Object.entries(apps)) rss[name] = await peakRss(app.child.pid);
    const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
    const yes = (ok) => (ok ? 'yes' : 'NO');
    printTable(
      ['scenario', 'baseline (same run)', 'FlashDuck', 'ratio', 'goal', 'met'],
      [
        [`landed → queryable on both replicas (${(csvBytes / 1e9).toFixed(2)} GB CSV)`, `DuckDB load of the folder: ${fmt(duckLoad)}`, `${fmt(synced[0])} / ${fmt(synced[1])}`, ratio(synced[1], duckLoad), '≤ 1.5x', yes(synced[1] <= 1.5 * duckLoad)],
        ['the same, against DuckDB typing every row (sample_size=-1)', `DuckDB load of the folder: ${fmt(duckLoadWhole)}`, `${fmt(synced[0])} / ${fmt(synced[1])}`, ratio(synced[1], duckLoadWhole), '', ''],
        ['bytes Redis sent for the initial sync', '', MB(syncSent), '', '', ''],
        [`merges after it (${firstMeta.parts.length} → ${settled.parts.length} parts)`, 'initial sync bytes', `${MB(mergeSent)} in ${fmt(mergeMs)}`, ratio(mergeSent, syncSent), '', ''],
        ['1% append: bytes Redis sent until both replicas serve it', `initial sync: ${MB(syncSent)}`, MB(appendSent), `${((100 * appendSent) / syncSent).toFixed(1)} %`, '≤ 10 %', yes(appendSent <= 0.1 * syncSent)],
        ['1% append: visible on both replicas', `initial sync: ${fmt(synced[1])}`, `${fmt(visible[0])} / ${fmt(visible[1])}`, ratio(visible[1], synced[1]), '≤ 0.1x', yes(visible[1] <= 0.1 * synced[1])],
        ['1% append: part bytes each replica fetched', `the new part: ${MB(newPart?.bytes ?? 0)}`, appendFetched.map(MB).join(' / '), ratio(Math.max(...appendFetched), newPart?.bytes ?? 1), '≤ 2x', yes(Math.max(...appendFetched) <= 2 * (newPart?.bytes ?? 0))],
        [`distinct GROUP BY p50 over ${settled.parts.length} parts (HTTP, JSON)`, `one in-memory DuckDB table: ${fmt(median(baseGroup))}`, fmt(median(fdGroup)), ratio(median(fdGroup), median(baseGroup)), '≤ 1.5x', yes(median(fdGroup) <= 1.5 * median(baseGroup))],
        ['Redis used_memory', `parts of the current version: ${MB(appended.bytes)}`, MB(usedMemory), ratio(usedMemory, appended.bytes), '', ''],
        ['initial sync: part bytes each replica fetched', `parts of the first version: ${MB(firstMeta.bytes)}`, syncFetched.map(MB).join(' / '), '', '', ''],
        ...(exportRow ? [exportRow] : []),
      ],
    );
    const cpuTotal = Object.values(syncCpu).reduce((a, c) => a + c.own + c.children, 0);
    const mergeCpuTotal = Object.values(mergeCpu).reduce((a, c) => a + c, 0);
    console.log(`\nCPU seconds during the initial sync (DuckDB's load of the folder: ${duckLoadCpu.toFixed(1)} s of CPU; typing every row: ${duckLoadWholeCpu.toFixed(1)} s), and during the merges after it:`);
    printTable(
      ['process', 'CPU s', 'of which its children (reader processes)', 'CPU s during the merges'],
      [...Object.entries(syncCpu).map(([n, c]) => [n, (c.own + c.children).toFixed(1), c.children ? c.children.toFixed(1) : '-', mergeCpu[n].toFixed(1)]), ['all', cpuTotal.toFixed(1), '', mergeCpuTotal.toFixed(1)]],
    );
    console.log('\npeak RSS (MB):');
    printTable(['process', 'peak RSS', 'largest child (reader process)'], Object.entries(rss).map(([n, r]) => [n, r.own.toFixed(0), r.children ? r.children.toFixed(0) : '-']));
  } finally {
    for (const a of Object.values(apps).reverse()) await a.stop();
    redis.disconnect();
    redisChild.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  }
}

await main();
