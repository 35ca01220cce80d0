// Performance benchmark: repeated queries (result cache) beside a bare node:http server and express +
// DuckDB; appending a file to a 1M-row table (incremental rebuild) beside a full build; query latency while
// snapshots swap every second beside no swaps. All in one run, on one machine.
import { fork } from 'node:child_process';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { REDIS_URL, ROOT, deletePrefix, fmt, freePort, httpQuery, printTable, sleep, startApp, flashduckEnv } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const DURATION = Number(process.env.BENCH_SECONDS ?? 5);
const work = path.join(os.tmpdir(), `flashduck-bench-perf-${process.pid}`);
const dataDir = path.join(work, 'data');
const prefix = `fdbenchp-${process.pid}`;
const REPEATED = 'SELECT region, count(*) AS n, avg(amount) AS avg_amount FROM bench GROUP BY region ORDER BY region';

const TABLE_SQL = (from, to) => `SELECT i AS id, i % 50000 AS customer_id, 'region_' || (i % 12) AS region, round(random() * 1000, 2) AS amount,
  (random() * 100)::INTEGER AS quantity, DATE '2024-01-01' + (i % 365)::INTEGER AS day,
  TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i) SECOND AS created_at, i % 3 = 0 AS flag, md5(i::VARCHAR) AS code, 'note ' || (i % 997) AS note
  FROM range(${from}, ${to}) r(i)`;

async function writeCsv(file, from, to) {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await c.run(`COPY (${TABLE_SQL(from, to)}) TO '${file}' (HEADER)`);
  c.closeSync();
  db.closeSync();
}

function startServer(args) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(ROOT, 'bench', 'servers.mjs'), args, { stdio: 'inherit' });
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`baseline server exited (${code})`)));
  });
}

async function load(url, opts = {}) {
  const r = await autocannon({ url, connections: 10, duration: DURATION, ...opts });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

async function waitRows(port, table, n, timeoutMs = 120_000) {
  const t0 = performance.now();
  for (;;) {
    try {
      const r = await httpQuery(port, `SELECT count(*) AS n FROM ${table}`);
      if (r.rows[0].n === n) return performance.now() - t0;
    } catch {}
    if (performance.now() - t0 > timeoutMs) throw new Error(`${table} never reached ${n} rows`);
    await sleep(5);
  }
}

async function main() {
  await rm(work, { recursive: true, force: true });
  await mkdir(path.join(dataDir, 'bench'), { recursive: true });
  await mkdir(path.join(dataDir, 'side'), { recursive: true });
  console.log(`# Performance: ${ROWS.toLocaleString('en')}-row table in 10 CSV files; autocannon, 10 connections, ${DURATION} s per run\n`);
  const staged = path.join(work, 'staged');
  await mkdir(staged, { recursive: true });
  for (let f = 0; f < 10; f++) await writeCsv(path.join(staged, `part-${f}.csv`), (f * ROWS) / 10, ((f + 1) * ROWS) / 10);
  await writeFile(path.join(dataDir, 'side', 'a.csv'), 'k\n1\n');

  const port = await freePort();
  const env = {
    ...flashduckEnv(prefix, dataDir, work),
    MONITOR_WATCH: 'true',
    MONITOR_SETTLE_MS: '100',
    QUERY_API_PORT: String(port),
  };
  const apps = [await startApp('cacher', env, /cacher started/), await startApp('monitor', env, /monitor started/), await startApp('query-api', env, /query-api listening/)];
  const servers = [];
  const redis = new Redis(REDIS_URL);
  try {
    // Full build: all ten files land at once (watch mode: no poll wait in either measurement).
    const { rename } = await import('node:fs/promises');
    const t0 = performance.now();
    for (let f = 0; f < 10; f++) await rename(path.join(staged, `part-${f}.csv`), path.join(dataDir, 'bench', `part-${f}.csv`));
    await waitRows(port, 'bench', ROWS);
    const fullMs = performance.now() - t0;
    const fullBuild = JSON.parse(await redis.hget(`${prefix}:{bench}:meta`, 'json')).buildMs;

    // Incremental: a 10k-row file appended to the table.
    await writeCsv(path.join(staged, 'extra.csv'), ROWS, ROWS + 10_000);
    const t1 = performance.now();
    await rename(path.join(staged, 'extra.csv'), path.join(dataDir, 'bench', 'extra.csv'));
    await waitRows(port, 'bench', ROWS + 10_000);
    const incMs = performance.now() - t1;
    const incBuild = JSON.parse(await redis.hget(`${prefix}:{bench}:meta`, 'json')).buildMs;
    if (process.env.BENCH_TRACE) {
      const landedAt = Date.now() - (performance.now() - t1);
      for (const a of apps) {
        for (const line of a.log().split('\n')) {
          const m = /"time":"([^"]+)".*"msg":"([^"]+)"/.exec(line);
          if (m && Date.parse(m[1]) >= landedAt - 50) console.log(`  +${Math.round(Date.parse(m[1]) - landedAt)} ms ${m[2]} ${/"(loadMs":.*"storeMs":\d+)/.exec(line)?.[1] ?? ''}`);
        }
      }
    }

    // Repeated query: FlashDuck (result cache) vs a bare node:http server with the same bytes vs express + DuckDB.
    const repeatedUrl = `http://127.0.0.1:${port}/v1/query?sql=${encodeURIComponent(REPEATED)}`;
    const answer = await fetch(repeatedUrl);
    const body = Buffer.from(await answer.arrayBuffer());
    await writeFile(path.join(work, 'answer.json'), body);
    const barePort = await freePort();
    servers.push(await startServer(['bare', String(barePort), path.join(work, 'answer.json'), answer.headers.get('content-type')]));
    const expressPort = await freePort();
    servers.push(await startServer(['express-duckdb', String(expressPort), path.join(dataDir, 'bench')]));
    const bare = await load(`http://127.0.0.1:${barePort}/v1/query?sql=${encodeURIComponent(REPEATED)}`);
    const fd = await load(repeatedUrl);
    // The form the README and the CLI use: POST with a JSON body.
    const postOpts = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: REPEATED }) };
    await fetch(`http://127.0.0.1:${port}/v1/query`, postOpts);
    const fdPost = await load(`http://127.0.0.1:${port}/v1/query`, postOpts);
    const ex = await load(`http://127.0.0.1:${expressPort}/v1/query?sql=${encodeURIComponent(REPEATED)}`);

    // Latency while snapshots swap every second (distinct, uncacheable queries) vs without swaps.
    // autocannon puts a fresh id in place of [<id>] in every request: each query is new to the cache.
    const distinct = `http://127.0.0.1:${port}/v1/query?sql=${encodeURIComponent("SELECT count(*) AS n FROM bench WHERE note <> '")}[<id>]${encodeURIComponent("'")}`;
    const calm = await load(distinct, { idReplacement: true });
    let swapping = true;
    let swaps = 0;
    const swapper = (async () => {
      while (swapping) {
        await appendFile(path.join(dataDir, 'side', 'a.csv'), `${swaps + 2}\n`);
        swaps += 1;
        await sleep(1000);
      }
    })();
    const busy = await load(distinct, { idReplacement: true });
    swapping = false;
    await swapper;

    const pct = (a, b) => `${((a / b) * 100).toFixed(0)} %`;
    printTable(
      ['scenario', 'baseline (same run)', 'FlashDuck', 'ratio', 'goal', 'met'],
      [
        ['repeated GROUP BY over HTTP, requests/s', `bare node:http, same bytes: ${Math.round(bare.rps).toLocaleString('en')}/s`, `${Math.round(fd.rps).toLocaleString('en')}/s`, pct(fd.rps, bare.rps), '≥ 35 % of bare', fd.rps >= 0.35 * bare.rps ? 'yes' : 'NO'],
        ['repeated GROUP BY, p50 / p99', `bare ${bare.p50} / ${bare.p99} ms`, `${fd.p50} / ${fd.p99} ms`, '', 'p50 ≤ 1 ms', fd.p50 <= 1 ? 'yes' : 'NO'],
        ['repeated GROUP BY, POST (JSON body), requests/s', `bare node:http, same bytes: ${Math.round(bare.rps).toLocaleString('en')}/s`, `${Math.round(fdPost.rps).toLocaleString('en')}/s`, pct(fdPost.rps, bare.rps), '≥ 35 % of bare', fdPost.rps >= 0.35 * bare.rps ? 'yes' : 'NO'],
        ['repeated GROUP BY, POST, p50 / p99', `bare ${bare.p50} / ${bare.p99} ms`, `${fdPost.p50} / ${fdPost.p99} ms`, '', 'p50 ≤ 1 ms', fdPost.p50 <= 1 ? 'yes' : 'NO'],
        ['repeated GROUP BY, express + DuckDB', `${Math.round(ex.rps).toLocaleString('en')}/s, p50 ${ex.p50} ms`, `${Math.round(fd.rps).toLocaleString('en')}/s`, `${(fd.rps / ex.rps).toFixed(1)}x`, '', ''],
        ['append a 10k-row file → visible', `full build of the 10 files: ${fmt(fullMs)} (cacher ${fullBuild} ms)`, `${fmt(incMs)} (cacher ${incBuild} ms)`, `${(incMs / fullMs).toFixed(2)}x`, '≤ 0.2x', incMs <= 0.2 * fullMs ? 'yes' : 'NO'],
        ['distinct queries, p99 while swapping every second', `no swaps: p99 ${calm.p99} ms (p50 ${calm.p50})`, `p99 ${busy.p99} ms (p50 ${busy.p50}), ${swaps} swaps`, `${(busy.p99 / Math.max(calm.p99, 1)).toFixed(2)}x`, '≤ 2x', busy.p99 <= 2 * Math.max(calm.p99, 1) ? 'yes' : 'NO'],
      ],
    );
    if (fd.errors || fdPost.errors || ex.errors || bare.errors || calm.errors || busy.errors) console.log(`\nerrors: fd ${fd.errors}, fd POST ${fdPost.errors}, express ${ex.errors}, bare ${bare.errors}, calm ${calm.errors}, swapping ${busy.errors}`);
  } finally {
    redis.disconnect();
    for (const s of servers) s.kill();
    for (const a of apps.reverse()) await a.stop();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
