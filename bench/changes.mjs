// Change-feed benchmark: a generated table of BENCH_CHANGES_ROWS rows (default 10M) in 50 CSV files through
// monitor, cacher and one query-api; then a 1% append (one new file) and a rewritten file (1% of its rows
// changed), each diffed with GET /v1/tables/<t>/changes. Baseline in the same run: DuckDB alone diffing the same
// two versions held whole in memory with the same SQL (a diff that does not know the parts).
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { deletePrefix, fmt, freePort, httpQuery, printTable, sleep, stageScaleTable, startApp, flashduckEnv, SCALE_TABLE_SQL } from './lib.mjs';

const ROWS = Number(process.env.BENCH_CHANGES_ROWS ?? 10_000_000);
const FILES = 50;
const APPEND = ROWS / 100;
const work = path.join(os.tmpdir(), `flashduck-bench-changes-${process.pid}`);
const staged = path.join(work, 'staged');
const dataDir = path.join(work, 'data');
const prefix = `fdbenchc-${process.pid}`;
const REWRITTEN = 'part-010.csv';
/** The cacher's default CACHER_MERGE_MAX_PARTS: past it, a merge follows. */
const MAX_PARTS = 16;

async function main() {
  await rm(work, { recursive: true, force: true });
  await mkdir(staged, { recursive: true });
  await mkdir(path.join(dataDir, 'big'), { recursive: true });
  console.log(`# Change feed: ${ROWS.toLocaleString('en')} rows x 10 columns in ${FILES} CSV files; a ${APPEND.toLocaleString('en')}-row append, then one file rewritten\n`);
  await stageScaleTable(staged, ROWS, FILES);

  // The baseline's three versions, whole, in memory; the same files the stack reads.
  const base = await DuckDBInstance.create(':memory:');
  const b = await base.connect();
  await b.run(`CREATE TABLE v1 AS SELECT * FROM read_csv('${staged}/*.csv', union_by_name=true)`);
  await b.run(`COPY (${SCALE_TABLE_SQL(ROWS, ROWS + APPEND)}) TO '${work}/append.csv' (HEADER)`);
  await b.run(`CREATE TABLE v2 AS SELECT * FROM v1 UNION ALL SELECT * FROM read_csv('${work}/append.csv')`);
  // The rewrite: one file, every 100th row's amount changed.
  await b.run(`COPY (SELECT * REPLACE (CASE WHEN id % 100 = 0 THEN amount + 1 ELSE amount END AS amount) FROM read_csv('${staged}/${REWRITTEN}')) TO '${work}/rewritten.csv' (HEADER)`);
  await b.run(`CREATE TABLE v3 AS SELECT * FROM v2 WHERE NOT (id % 100 = 0 AND id IN (SELECT id FROM read_csv('${staged}/${REWRITTEN}'))) UNION ALL SELECT * FROM read_csv('${work}/rewritten.csv') WHERE id % 100 = 0`);
  const changedRows = Number((await b.runAndReadAll(`SELECT count(*) FROM read_csv('${staged}/${REWRITTEN}') WHERE id % 100 = 0`)).getRowsJS()[0][0]);
  // The same change-feed SQL FlashDuck runs (changesSql), over the two versions whole: what a diff costs that does
  // not know which parts the versions share.
  const { changesSql } = await import('@flashduck/query-api/changes');
  const columns = (await b.runAndReadAll(`DESCRIBE v1`)).getRowObjectsJS().map((r) => ({ name: r.column_name, type: r.column_type }));
  const baseline = async (from, to, key) => {
    const t = performance.now();
    const r = await b.runAndReadAll(`SELECT count(*) FROM (${changesSql('big', columns, key ? [key] : [], from, to)})`);
    return { ms: performance.now() - t, rows: Number(r.getRowsJS()[0][0]) };
  };

  const port = await freePort();
  const env = { ...flashduckEnv(prefix, dataDir, work), MONITOR_POLL_MS: '500', QUERY_API_PORT: String(port), FLASHDUCK_SHUTDOWN_MS: '60000' };
  const apps = [await startApp('cacher', env, /cacher started/), await startApp('monitor', env, /monitor started/), await startApp('query-api', env, /query-api listening/)];
  const api = `http://127.0.0.1:${port}`;
  const versions = async () => (await (await fetch(`${api}/v1/tables/big/versions`)).json()).versions ?? [];
  const count = async () => (await httpQuery(port, 'SELECT count(*) AS n FROM big').catch(() => ({ rows: [{ n: -1 }] }))).rows[0].n;
  const fetchedBytes = async () => Number(/^flashduck_query_part_bytes_fetched_total (\d+)/m.exec(await (await fetch(`${api}/metrics`)).text())?.[1] ?? 0);
  /**
   * Waits until `rows` are served and the merges they set off are done (the part count within
   * CACHER_MERGE_MAX_PARTS, nothing published for 3 s), so that no merge runs beside a measurement.
   */
  const settle = async (rows) => {
    while ((await count()) !== rows) await sleep(100);
    let last = '';
    let since = performance.now();
    for (;;) {
      const [newest] = await versions();
      const now = JSON.stringify(newest);
      if (now !== last) [last, since] = [now, performance.now()];
      else if (newest.parts <= MAX_PARTS && performance.now() - since > 3000) return await versions();
      await sleep(200);
    }
  };
  /** One change-feed request: time to the last byte, rows, and part bytes the replica fetched for it. */
  const feed = async (from, to, format, key) => {
    const before = await fetchedBytes();
    const t = performance.now();
    const res = await fetch(`${api}/v1/tables/big/changes?from=${from}&to=${to}&format=${format}${key ? `&key=${key}` : ''}`);
    const body = Buffer.from(await res.arrayBuffer());
    const ms = performance.now() - t;
    if (res.status !== 200) throw new Error(`changes ${from}..${to}: ${res.status} ${body.toString().slice(0, 300)}`);
    const rows = Number(res.headers.get('x-flashduck-row-count') ?? body.toString().split('\n').length - 2);
    return { ms, rows, fetched: await fetchedBytes() - before };
  };

  const out = [];
  try {
    for (const f of (await readdir(staged)).sort()) await rename(path.join(staged, f), path.join(dataDir, 'big', f));
    const v1 = (await settle(ROWS))[0];
    await rename(path.join(work, 'append.csv'), path.join(dataDir, 'big', 'append.csv'));
    const afterAppend = await settle(ROWS + APPEND);
    const v2 = afterAppend.find((v) => v.cause === 'build' && v.rows === ROWS + APPEND);
    const v2last = afterAppend[0];
    await rename(path.join(work, 'rewritten.csv'), path.join(dataDir, 'big', REWRITTEN));
    let afterRewrite;
    for (;;) {
      afterRewrite = await settle(ROWS + APPEND);
      if (afterRewrite[0].version > v2last.version) break;
    }
    const v3 = afterRewrite.find((v) => v.cause === 'build' && v.version > v2last.version);

    /** The same rows as a plain query answers them in CSV: what writing that many rows costs by itself. */
    const plain = async (where) => {
      const t = performance.now();
      const res = await fetch(`${api}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: `SELECT * FROM big WHERE ${where}`, format: 'csv' }) });
      await res.arrayBuffer();
      return performance.now() - t;
    };
    const row = async (what, from, to, key, base, same) => {
      const cold = await feed(from.version, to.version, 'csv', key); // first request: parts, generation, query
      const warm = await feed(from.version, to.version, 'arrow', key); // the generation kept, another format
      const query = same ? fmt(await plain(same)) : '—';
      out.push([what, `v${from.version}→v${to.version} (${from.parts}→${to.parts} parts)`, cold.rows.toLocaleString('en'), fmt(cold.ms), fmt(warm.ms), query, `${(cold.fetched / 1e6).toFixed(1)} MB`, base ? fmt(base.ms) : '—', base ? `${(base.ms / warm.ms).toFixed(0)}×` : '—']);
      if (base && base.rows !== cold.rows) throw new Error(`${what}: FlashDuck ${cold.rows} rows, DuckDB ${base.rows}`);
    };
    await row(`1% append (${APPEND.toLocaleString('en')} rows)`, v1, v2, undefined, await baseline('v1', 'v2'), `id >= ${ROWS}`);
    await row(`1 file rewritten, ${changedRows.toLocaleString('en')} rows changed, key=id`, v2last, v3, 'id', await baseline('v2', 'v3', 'id'));
    await row('the same, without key', v2last, v3, undefined, await baseline('v2', 'v3'));
    if (v2last.version !== v2.version) await row('a merge (no rows change)', v2, v2last, undefined, undefined);
  } finally {
    for (const a of apps.reverse()) await a.stop();
    b.closeSync();
    base.closeSync();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
  printTable(['change', 'versions', 'rows out', 'FlashDuck first request (csv)', 'again (arrow)', 'those rows by a plain query (csv)', 'part bytes fetched', 'DuckDB whole-table diff', 'speedup'], out);
}

await main();
