// Monitor scan cost: one leader scans the whole folder every poll. 20,000 small files in 20 tables; the
// monitor's own scan time (steady state, nothing changing) beside a bare walk of the same folder in this process
// (readdir + one lstat per file, sequential and 64 at once).
import { lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, deletePrefix, flashduckEnv, median, printTable, sleep, startApp } from './lib.mjs';

const TABLES = 20;
const PER_TABLE = Number(process.env.BENCH_FILES_PER_TABLE ?? 1000);
const work = path.join(os.tmpdir(), `flashduck-bench-scan-${process.pid}`);
const dataDir = path.join(work, 'data');
const prefix = `fdbenchscan-${process.pid}`;

async function walk(dir, parallel) {
  let n = 0;
  const entries = await readdir(dir, { withFileTypes: true });
  const one = async (e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += await walk(p, parallel);
    else {
      await lstat(p);
      n += 1;
    }
  };
  if (parallel) for (let i = 0; i < entries.length; i += 64) await Promise.all(entries.slice(i, i + 64).map(one));
  else for (const e of entries) await one(e);
  return n;
}

async function timeWalk(parallel) {
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await walk(dataDir, parallel);
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function main() {
  await rm(work, { recursive: true, force: true });
  for (let t = 0; t < TABLES; t++) {
    await mkdir(path.join(dataDir, `t${t}`), { recursive: true });
    for (let i = 0; i < PER_TABLE; i++) await writeFile(path.join(dataDir, `t${t}`, `f${i}.csv`), 'a,b\n1,2\n');
  }
  const files = TABLES * PER_TABLE;
  const sequential = await timeWalk(false);
  const parallel = await timeWalk(true);
  const redis = new Redis(REDIS_URL);
  const monitor = await startApp('monitor', { ...flashduckEnv(prefix, dataDir, work), MONITOR_POLL_MS: '1000', FLASHDUCK_HEARTBEAT_MS: '250' }, /monitor started/);
  try {
    const scans = new Map();
    for (const deadline = Date.now() + 120_000; scans.size < 8 && Date.now() < deadline; await sleep(100)) {
      for (const raw of Object.values(await redis.hgetall(`${prefix}:heartbeats`))) {
        const info = JSON.parse(raw).info;
        // The first scan writes every manifest; the ones after it are the steady state measured here.
        if (info.files === files && info.at) scans.set(info.at, info.ms);
      }
    }
    const steady = [...scans.values()].slice(1);
    const scan = median(steady);
    console.log(`\n## Monitor scan: ${files.toLocaleString('en-US')} files in ${TABLES} tables, nothing changing (median of ${steady.length} scans)\n`);
    printTable(
      ['what', 'time per pass', 'per file', 'vs bare walk (64 at once)'],
      [
        ['bare walk, one lstat at a time (baseline)', `${sequential.toFixed(0)} ms`, `${((sequential * 1000) / files).toFixed(1)} µs`, `${(sequential / parallel).toFixed(2)}x`],
        ['bare walk, 64 lstat at once (baseline)', `${parallel.toFixed(0)} ms`, `${((parallel * 1000) / files).toFixed(1)} µs`, '1.00x'],
        ['monitor scan (walk, settle check, diff against the manifests)', `${scan.toFixed(0)} ms`, `${((scan * 1000) / files).toFixed(1)} µs`, `${(scan / parallel).toFixed(2)}x`],
      ],
    );
  } finally {
    await monitor.stop();
    await deletePrefix(prefix);
    redis.disconnect();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
