// Shared helpers for the benchmarks: processes, timing, percentiles, tables.
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { DuckDBInstance } from '@duckdb/node-api';
import { deletePrefix as deleteKeys, stackEnv } from '@flashduck/core/testing';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REDIS_URL = process.env.FLASHDUCK_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
export const median = (v) => percentile(v, 50);
export const fmt = (ms) => (ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`);

export { freePort } from '@flashduck/cli';

/** Starts `node apps/<app>/dist/main.js`; resolves when `ready` appears in its log. */
export async function startApp(app, env, ready) {
  // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") goes to every component's node.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'apps', app, 'dist', 'main.js')], {
    env: { ...process.env, FLASHDUCK_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 30_000;
  while (!ready.test(log)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${app} did not start:\n${log.slice(-2000)}`);
    await sleep(20);
  }
  return { child, log: () => log, stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) };
}

export async function httpQuery(port, sql) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Prints rows as a Markdown table. */
export function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  for (const r of rows) console.log(line(r));
}

/** Deletes every key under a benchmark's prefix (never FLUSHALL: the Redis may be shared). */
export async function deletePrefix(prefix) {
  await deleteKeys(REDIS_URL, prefix);
}

/** The settings every component of a benchmark stack shares: Redis, prefix, data folder, and folders under `work`. */
export const flashduckEnv = (prefix, dataDir, work) => stackEnv(prefix, dataDir, work, REDIS_URL);

/** Writes the benchmark table: `rows` rows x 10 columns split over `files` CSV files `<dir>/part-<n>.csv`. */
export async function generateCsvTable(dir, rows, files) {
  await mkdir(dir, { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const per = rows / files;
  for (let f = 0; f < files; f++) {
    await c.run(`COPY (
      SELECT i AS id, i % 50000 AS customer_id, 'region_' || (i % 12) AS region, round(random() * 1000, 2) AS amount,
             (random() * 100)::INTEGER AS quantity, DATE '2024-01-01' + (i % 365)::INTEGER AS day,
             TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i) SECOND AS created_at, i % 3 = 0 AS flag,
             md5(i::VARCHAR) AS code, 'note ' || (i % 997) AS note
      FROM range(${f * per}, ${(f + 1) * per}) r(i)) TO '${dir}/part-${f}.csv' (HEADER)`);
  }
  c.closeSync();
  db.closeSync();
}

/** The scale benchmarks' table: rows `from` … `to` of 10 columns (ids, numbers, text, dates, a hash). */
export const SCALE_TABLE_SQL = (from, to) => `SELECT i AS id, i % 50000 AS customer_id, 'region_' || (i % 12) AS region, round(random() * 1000, 2) AS amount,
  (random() * 100)::INTEGER AS quantity, DATE '2024-01-01' + (i % 365)::INTEGER AS day,
  TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i) SECOND AS created_at, i % 3 = 0 AS flag, md5(i::VARCHAR) AS code, 'note ' || (i % 997) AS note
  FROM range(${from}, ${to}) r(i)`;

/** Writes `rows` rows of {@link SCALE_TABLE_SQL} as `files` CSV files `<dir>/part-<n>.csv`; returns their bytes. */
export async function stageScaleTable(dir, rows, files) {
  await mkdir(dir, { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  for (let f = 0; f < files; f++) await c.run(`COPY (${SCALE_TABLE_SQL((f * rows) / files, ((f + 1) * rows) / files)}) TO '${dir}/part-${String(f).padStart(3, '0')}.csv' (HEADER)`);
  c.closeSync();
  db.closeSync();
  const { readdir, stat } = await import('node:fs/promises');
  let bytes = 0;
  for (const f of await readdir(dir)) bytes += (await stat(path.join(dir, f))).size;
  return bytes;
}

/**
 * CPU seconds (user + system) a process has used so far, with its children: the live ones (reader processes) and
 * those it has reaped. Read from /proc (Linux), in clock ticks of 1/100 s.
 */
export async function cpuSeconds(pid) {
  const { readFile } = await import('node:fs/promises');
  const ticks = async (p, reaped) => {
    const stat = await readFile(`/proc/${p}/stat`, 'utf8').catch(() => '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the name: state is [0]; utime [11], stime [12], cutime [13], cstime [14].
    return f.length < 15 ? 0 : Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0);
  };
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);
  const own = await ticks(pid, true);
  const children = (await Promise.all(kids.map((k) => ticks(k, true)))).reduce((a, b) => a + b, 0);
  return { own: own / 100, children: children / 100 };
}

/** Peak resident memory (VmHWM) of a process and of its largest child (reader processes), in MB. */
export async function peakRss(pid) {
  const { readFile } = await import('node:fs/promises');
  const hwm = async (p) => Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${p}/status`, 'utf8').catch(() => ''))?.[1] ?? 0) / 1024;
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);
  const children = await Promise.all(kids.map(hwm));
  return { own: await hwm(pid), children: children.length ? Math.max(...children) : 0 };
}
