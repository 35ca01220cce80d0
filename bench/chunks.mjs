// Part chunk size: CPU to store a 128 MB part in Redis and to fetch it back (storePart / fetchPart, as the cacher
// and every replica do), with 4 MB chunks (the default) beside 32 MB chunks (the earlier default) in the same run.
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { createKeys, deletePart, fetchPart, storePart } from '@flashduck/core';
import { REDIS_URL, deletePrefix, median, printTable } from './lib.mjs';

const MB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_CHUNK_PART_MB ?? 128) * MB;
const RUNS = 5;
const work = path.join(os.tmpdir(), `flashduck-bench-chunks-${process.pid}`);
const prefix = `fdbenchchunks-${process.pid}`;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main() {
  await mkdir(work, { recursive: true });
  console.log(`\n# Part chunks: storing and fetching a ${SIZE / MB} MB part (CPU of this process, median of ${RUNS})\n`);
  const redis = new Redis(REDIS_URL);
  const keys = createKeys(prefix);
  try {
    const rows = [];
    const results = {};
    for (const chunk of [32 * MB, 4 * MB]) results[chunk] = { store: [], fetch: [], storeWall: [], fetchWall: [] };
    for (let run = 0; run < RUNS; run++) {
      // New bytes each run: a part stored before would not be written again.
      const file = path.join(work, `part-${run}.bin`);
      await writeFile(file, randomBytes(SIZE));
      for (const chunk of [32 * MB, 4 * MB]) {
        const r = results[chunk];
        let c = cpuMs();
        let t = performance.now();
        const stored = await storePart(redis, keys, `t${chunk}`, file, chunk);
        r.store.push(cpuMs() - c);
        r.storeWall.push(performance.now() - t);
        c = cpuMs();
        t = performance.now();
        await fetchPart(redis, keys, stored, path.join(work, 'fetched.bin'));
        r.fetch.push(cpuMs() - c);
        r.fetchWall.push(performance.now() - t);
        await deletePart(redis, keys, stored);
      }
      await rm(file, { force: true });
    }
    const base = results[32 * MB];
    const ours = results[4 * MB];
    const ms = (v) => `${median(v).toFixed(0)} ms`;
    rows.push(['store: CPU (wall)', `${ms(base.store)} (${ms(base.storeWall)})`, `${ms(ours.store)} (${ms(ours.storeWall)})`, `${(median(ours.store) / median(base.store)).toFixed(2)}x`]);
    rows.push(['fetch: CPU (wall)', `${ms(base.fetch)} (${ms(base.fetchWall)})`, `${ms(ours.fetch)} (${ms(ours.fetchWall)})`, `${(median(ours.fetch) / median(base.fetch)).toFixed(2)}x`]);
    printTable(['step', '32 MB chunks (baseline, same run)', '4 MB chunks (default)', 'ratio'], rows);
  } finally {
    redis.disconnect();
    await deletePrefix(prefix);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
