// PostgreSQL-protocol benchmark: a repeated query and distinct queries over the PostgreSQL protocol
// (node-postgres, 10 connections, pgbench-style loops) beside the same over HTTP (POST /v1/query, 10 keep-alive
// connections), on the read-path table (1M rows x 10 columns, 10 CSV files), in one run.
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { deletePrefix, fmt, freePort, generateCsvTable, httpQuery, percentile, printTable, sleep, startApp, flashduckEnv } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 10;
const work = path.join(os.tmpdir(), `flashduck-bench-pg-${process.pid}`);
const dataDir = path.join(work, 'data');
const prefix = `fdbenchpg-${process.pid}`;
const REPEATED = 'SELECT region, count(*) AS n, avg(amount) AS avg_amount FROM bench GROUP BY region ORDER BY region';
/** A text no other request sends (the id is never negative): the HTTP result cache cannot answer it. */
const DISTINCT = (i) => `SELECT region, count(*) AS n FROM bench WHERE quantity > ${i % 100} AND id <> -${i + 1} GROUP BY region`;

/** Runs `op` in CONNECTIONS loops for SECONDS; requests per second and latency percentiles. */
async function loops(op) {
  const latencies = [];
  const until = performance.now() + SECONDS * 1000;
  let i = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      while (performance.now() < until) {
        const t = performance.now();
        await op(c, i++);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { rps: latencies.length / SECONDS, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function main() {
  await rm(work, { recursive: true, force: true });
  await mkdir(path.join(dataDir, 'bench'), { recursive: true });
  console.log(`# PostgreSQL protocol beside HTTP: ${ROWS.toLocaleString('en')} rows, ${CONNECTIONS} connections, ${SECONDS} s per run\n`);
  await generateCsvTable(path.join(dataDir, 'bench'), ROWS, 10);
  const httpPort = await freePort();
  const pgPort = await freePort();
  const env = { ...flashduckEnv(prefix, dataDir, work), QUERY_API_PORT: String(httpPort), QUERY_API_PG_PORT: String(pgPort) };
  const apps = [await startApp('cacher', env, /cacher started/), await startApp('monitor', env, /monitor started/), await startApp('query-api', env, /query-api listening/)];
  const clients = [];
  try {
    for (;;) {
      const n = await httpQuery(httpPort, 'SELECT count(*) AS n FROM bench').then((r) => r.rows[0].n, () => 0);
      if (n === ROWS) break;
      await sleep(100);
    }
    for (let c = 0; c < CONNECTIONS; c++) {
      const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'bench' });
      await client.connect();
      clients.push(client);
    }
    const viaPg = (sql) => loops((c) => clients[c].query(sql));
    // fetch keeps its connections alive (Node's pool): ten loops, ten connections, as node-postgres has.
    const post = async (sql) => {
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql }) });
      await res.arrayBuffer();
    };
    const rows = [];
    for (const [what, pgRun, httpRun] of [
      ['repeated GROUP BY', () => viaPg(REPEATED), () => loops(() => post(REPEATED))],
      ['distinct GROUP BYs', () => loops((c, i) => clients[c].query(DISTINCT(i))), () => loops((_c, i) => post(DISTINCT(i)))],
    ]) {
      const p = await pgRun();
      const h = await httpRun();
      rows.push([what, Math.round(p.rps), fmt(p.p50), fmt(p.p99), Math.round(h.rps), fmt(h.p50), fmt(h.p99)]);
    }
    printTable(['workload', 'PostgreSQL req/s', 'p50', 'p99', 'HTTP req/s', 'p50', 'p99'], rows);
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    for (const a of apps.reverse()) await a.stop();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
