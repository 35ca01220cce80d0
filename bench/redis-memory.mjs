// Redis memory per table: what one table costs in Redis, by kind of key, beside the size of its source files.
// 1M rows x 10 columns in 10 CSV files (as the read-path benchmark), built by one monitor and one cacher; then
// one file is appended to, so a second version is published and the first one is retained for CACHER_RETAIN_MS.
import { appendFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, deletePrefix, flashduckEnv, printTable, sleep, startApp, generateCsvTable } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const FILES = 10;
const work = path.join(os.tmpdir(), `flashduck-bench-mem-${process.pid}`);
const dataDir = path.join(work, 'data');
const prefix = `fdbenchmem-${process.pid}`;
const mb = (b) => `${(b / 1024 / 1024).toFixed(1)} MB`;

async function generate() {
  await generateCsvTable(path.join(dataDir, 'bench'), ROWS, FILES);
}

/** MEMORY USAGE of every key under the prefix, summed by kind. */
async function usage(redis) {
  const meta = JSON.parse((await redis.hget(`${prefix}:{bench}:meta`, 'json')) ?? '{}');
  const current = new Set((meta.parts ?? []).map((p) => p.id));
  const sums = { 'parts of the current version': 0, 'parts only a retained older version lists': 0, 'everything else (manifest, meta, fragment index, queues, heartbeats)': 0 };
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const bytes = Number(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) || 0;
      const m = /:\{part:([0-9a-f]+)\}:\d+$/.exec(k);
      if (!m) sums['everything else (manifest, meta, fragment index, queues, heartbeats)'] += bytes;
      else if (current.has(m[1])) sums['parts of the current version'] += bytes;
      else sums['parts only a retained older version lists'] += bytes;
    }
  } while (cursor !== '0');
  return { sums, meta };
}

async function main() {
  await rm(work, { recursive: true, force: true });
  await generate();
  const files = await readdir(path.join(dataDir, 'bench'));
  let sourceBytes = 0;
  for (const f of files) sourceBytes += (await stat(path.join(dataDir, 'bench', f))).size;
  const env = { ...flashduckEnv(prefix, dataDir, work), MONITOR_POLL_MS: '300', MONITOR_SETTLE_MS: '200', CACHER_RETAIN_MS: '600000' };
  const redis = new Redis(REDIS_URL);
  const apps = [await startApp('cacher', env, /cacher started/), await startApp('monitor', env, /monitor started/)];
  try {
    const waitVersion = async (v) => {
      for (const deadline = Date.now() + 180_000; Date.now() < deadline; await sleep(200)) {
        const m = JSON.parse((await redis.hget(`${prefix}:{bench}:meta`, 'json')) ?? '{}');
        if ((m.version ?? 0) >= v) return m;
      }
      throw new Error(`version ${v} not published`);
    };
    await waitVersion(1);
    await appendFile(path.join(dataDir, 'bench', 'part-0.csv'), `${ROWS},1,region_1,1.5,1,2024-01-01,2024-01-01 00:00:00,true,x,appended\n`);
    const meta = await waitVersion(2);
    await sleep(500);
    const { sums } = await usage(redis);
    const total = Object.values(sums).reduce((a, b) => a + b, 0);
    console.log(`\n## Redis memory of one table: ${ROWS.toLocaleString('en-US')} rows x 10 columns in ${FILES} CSV files (${mb(sourceBytes)} on disk), after 2 versions\n`);
    printTable(
      ['what', 'bytes in Redis (MEMORY USAGE)', 'x source files'],
      [
        ['source CSV files on disk (baseline)', mb(sourceBytes), '1.00x'],
        ...Object.entries(sums).map(([k, v]) => [k, mb(v), `${(v / sourceBytes).toFixed(2)}x`]),
        ['total', mb(total), `${(total / sourceBytes).toFixed(2)}x`],
      ],
    );
    console.log(`\ncurrent version: ${mb(meta.bytes ?? 0)} in ${meta.parts?.length ?? 0} parts; a retained older version costs only the parts it does not share.`);
  } finally {
    for (const a of apps) await a.stop();
    await deletePrefix(prefix);
    redis.disconnect();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
