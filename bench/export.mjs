// Export benchmark: the 1M-row x 10-column table exported by the exporter process (snapshot from Redis →
// Parquet zstd in the export dir, atomically) beside DuckDB alone COPYing the same table to Parquet.
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { REDIS_URL, fmt, median, printTable, sleep, startApp, deletePrefix, flashduckEnv } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_EXPORT_RUNS ?? 3);
const work = path.join(os.tmpdir(), `flashduck-bench-export-${process.pid}`);
const dataDir = path.join(work, 'data');
const exportDir = path.join(work, 'exports');
const prefix = `fdbenche-${process.pid}`;

const TABLE_SQL = `SELECT i AS id, i % 50000 AS customer_id, 'region_' || (i % 12) AS region, round(random() * 1000, 2) AS amount,
  (random() * 100)::INTEGER AS quantity, DATE '2024-01-01' + (i % 365)::INTEGER AS day,
  TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i) SECOND AS created_at, i % 3 = 0 AS flag, md5(i::VARCHAR) AS code, 'note ' || (i % 997) AS note`;

async function main() {
  await rm(work, { recursive: true, force: true });
  await mkdir(path.join(dataDir, 'bench'), { recursive: true });
  console.log(`# Export: ${ROWS.toLocaleString('en')} rows x 10 columns, Parquet zstd\n`);
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  for (let f = 0; f < 10; f++) {
    const per = ROWS / 10;
    await c.run(`COPY (${TABLE_SQL} FROM range(${f * per}, ${(f + 1) * per}) r(i)) TO '${dataDir}/bench/part-${f}.csv' (HEADER)`);
  }
  // Baseline: DuckDB alone, the table already in memory, COPY to Parquet zstd.
  await c.run(`CREATE TABLE bench AS SELECT * FROM read_csv('${dataDir}/bench/*.csv')`);
  const base = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await c.run(`COPY bench TO '${work}/baseline-${i}.parquet' (FORMAT parquet, COMPRESSION zstd)`);
    base.push(performance.now() - t0);
  }
  c.closeSync();
  db.closeSync();

  const env = {
    ...flashduckEnv(prefix, dataDir, work),
    MONITOR_POLL_MS: '200',
    EXPORTER_DEBOUNCE_MS: '0',
  };
  const apps = [await startApp('cacher', env, /cacher started/), await startApp('monitor', env, /monitor started/)];
  const redis = new Redis(REDIS_URL);
  try {
    while (!(await redis.hget(`${prefix}:{bench}:meta`, 'version'))) await sleep(100);
    const ours = [];
    for (let i = 0; i < RUNS; i++) {
      await redis.del(`${prefix}:{bench}:exported`);
      // A cold part cache each time: every export fetches the table's parts from Redis, as a first export does.
      const exporter = await startApp('exporter', { ...env, EXPORTER_WORK_DIR: path.join(work, `exporter-${i}`) }, /exporter started/);
      apps.push(exporter);
      while (!/"msg":"export written"/.test(exporter.log())) await sleep(20);
      const line = exporter.log().split("\n").find((l) => l.includes("\"msg\":\"export written\""));
      ours.push(Number(/"ms":(\d+)/.exec(line)[1]));
      if (process.env.BENCH_TRACE) console.log(line);
      await exporter.stop();
      apps.pop();
    }
    // A running exporter after a 1% append: it fetches the new part, writes its piece and joins the cached ones.
    await redis.del(`${prefix}:{bench}:exported`);
    const exporter = await startApp('exporter', { ...env, EXPORTER_WORK_DIR: path.join(work, 'exporter-warm') }, /exporter started/);
    apps.push(exporter);
    const written = () => exporter.log().split('\n').filter((l) => l.includes('"msg":"export written"'));
    while (written().length === 0) await sleep(20);
    const appended = [];
    const gen = await DuckDBInstance.create(':memory:');
    const g = await gen.connect();
    for (let i = 0; i < RUNS; i++) {
      const before = written().length;
      const per = ROWS / 100;
      await g.run(`COPY (${TABLE_SQL} FROM range(${ROWS + i * per}, ${ROWS + (i + 1) * per}) r(i)) TO '${work}/append-${i}.csv' (HEADER)`);
      await rename(`${work}/append-${i}.csv`, `${dataDir}/bench/append-${i}.csv`);
      while (written().length === before) await sleep(20);
      const line = written().at(-1);
      if (process.env.BENCH_TRACE) console.log(line);
      appended.push({ ms: Number(/"ms":(\d+)/.exec(line)[1]), fetched: Number(/"fetchedBytes":(\d+)/.exec(line)[1]), rows: Number(/"rows":(\d+)/.exec(line)[1]) });
    }
    // A merge, exporter running: four more files make 17 parts, over CACHER_MERGE_MAX_PARTS (16), and the cacher
    // merges them into one. The export of the merge's version joins the pieces kept for the parts it merged.
    const before = JSON.parse(await redis.hget(`${prefix}:{bench}:meta`, 'json'));
    for (let i = 0; i < 4; i++) {
      const per = ROWS / 100;
      const from = ROWS + (RUNS + i) * per;
      await g.run(`COPY (${TABLE_SQL} FROM range(${from}, ${from + per}) r(i)) TO '${work}/more-${i}.csv' (HEADER)`);
    }
    for (let i = 0; i < 4; i++) await rename(`${work}/more-${i}.csv`, `${dataDir}/bench/more-${i}.csv`);
    let merged;
    for (;; await sleep(50)) {
      const m = JSON.parse(await redis.hget(`${prefix}:{bench}:meta`, 'json'));
      if (m.cause === 'merge' && m.rows === before.rows + 4 * (ROWS / 100)) {
        merged = m;
        break;
      }
    }
    let mergeLine;
    while (!(mergeLine = written().find((l) => l.includes(`"version":${merged.version},`)))) await sleep(20);
    if (process.env.BENCH_TRACE) console.log(mergeLine);
    const mergeExport = { ms: Number(/"ms":(\d+)/.exec(mergeLine)[1]), fetched: Number(/"fetchedBytes":(\d+)/.exec(mergeLine)[1]) };
    g.closeSync();
    gen.closeSync();
    const appendMs = median(appended.map((a) => a.ms));
    const manifest = JSON.parse(await readFile(path.join(exportDir, 'bench.manifest.json'), 'utf8'));
    printTable(
      ['scenario', 'baseline (same run)', 'FlashDuck', 'ratio', 'goal', 'met'],
      [[
        `export ${ROWS.toLocaleString('en')} rows (median of ${RUNS})`,
        `DuckDB COPY of the table alone: ${fmt(median(base))}`,
        `${fmt(median(ours))} (${(manifest.bytes / 1e6).toFixed(1)} MB)`,
        `${(median(ours) / median(base)).toFixed(2)}x`,
        '≤ 1.2x',
        median(ours) / median(base) <= 1.2 ? 'yes' : 'NO',
      ], [
        `export after a 1% append, exporter running (median of ${RUNS})`,
        `DuckDB COPY of the table alone: ${fmt(median(base))}`,
        `${fmt(appendMs)} (${appended.map((a) => `${(a.fetched / 1e6).toFixed(1)} MB`).join(', ')} of parts fetched)`,
        `${(appendMs / median(base)).toFixed(2)}x`,
        '≤ 1.2x',
        appendMs / median(base) <= 1.2 ? 'yes' : 'NO',
      ], [
        `export of a merge's version (${before.parts.length + 4} → ${merged.parts.length} parts, ${merged.rows.toLocaleString('en')} rows), exporter running`,
        `DuckDB COPY of the table alone: ${fmt(median(base))}`,
        `${fmt(mergeExport.ms)} (${(mergeExport.fetched / 1e6).toFixed(1)} MB of parts fetched; the merged part: ${(merged.parts[0].bytes / 1e6).toFixed(1)} MB)`,
        `${(mergeExport.ms / median(base)).toFixed(2)}x`,
        '≤ 1.2x',
        mergeExport.ms / median(base) <= 1.2 ? 'yes' : 'NO',
      ]],
    );
  } finally {
    redis.disconnect();
    for (const a of apps.reverse()) await a.stop();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
