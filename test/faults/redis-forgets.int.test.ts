import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { redisAnswers } from '@flashduck/cli';
import { AppProcess, flashduckEnv, freePort, parquetRowCount, post, query, removeDir, tempDir, waitFor } from '../helpers.js';

/** Bound for every table to be served whole again after Redis came back empty (default poll and settle times). */
const HEAL_BOUND_MS = 20_000;

const csv = (from: number, n: number) => `id,temp\n${Array.from({ length: n }, (_, i) => `${from + i},${(from + i) % 37}`).join('\n')}\n`;

function startRedis(port: number): ChildProcess {
  // No persistence: a restart comes back empty, as after a failover to an empty replica or a lost volume.
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
}

describe('Redis restarted empty under the five components', () => {
  const procs: AppProcess[] = [];
  let redis: ChildProcess | null = null;
  let work = '';
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    redis?.kill('SIGKILL');
    if (work) await removeDir(work);
  });

  it('heals from the folder: every table whole, no export deleted, writes after it applied, status answers throughout', async () => {
    work = await tempDir('redis-forgets');
    const dataDir = path.join(work, 'data');
    const exportDir = path.join(work, 'exports');
    await mkdir(path.join(dataDir, 'weather'), { recursive: true });
    await mkdir(path.join(dataDir, 'sales'), { recursive: true });
    await writeFile(path.join(dataDir, 'weather', 'seattle.csv'), csv(1, 300));
    await writeFile(path.join(dataDir, 'sales', 'a.csv'), csv(1, 10));
    await writeFile(path.join(dataDir, 'sales', 'b.csv'), csv(11, 10));
    const redisPort = await freePort();
    redis = startRedis(redisPort);
    await waitFor('redis up', () => redisAnswers(`redis://127.0.0.1:${redisPort}`, 200), 10_000, 50);

    const apiPort = await freePort();
    const env = {
      ...flashduckEnv('fdforget', dataDir, work, `redis://127.0.0.1:${redisPort}`),
      MONITOR_POLL_MS: '200',
      MONITOR_SETTLE_MS: '300',
      CACHER_RECONCILE_MS: '1000',
      QUERY_API_REFRESH_MS: '300',
      EXPORTER_DEBOUNCE_MS: '200',
      EXPORTER_RECONCILE_MS: '500',
      WRITER_POLL_MS: '200',
    };
    for (const app of ['monitor', 'cacher', 'exporter', 'write-applier']) procs.push(AppProcess.start(app, env));
    procs.push(AppProcess.start('query-api', { ...env, QUERY_API_PORT: String(apiPort) }));
    const count = async (table: string) => {
      const r = await query(apiPort, `SELECT count(*) AS n FROM ${table}`);
      return r.status === 200 ? Number(r.body.rows[0].n) : `${r.status} ${JSON.stringify(r.body)}`;
    };
    await waitFor('both tables served', async () => (await count('weather')) === 300 && (await count('sales')) === 20, 30_000, 100);
    await waitFor('both tables exported', async () => (await readdir(exportDir).catch(() => [])).filter((f) => f.endsWith('.parquet')).length === 2, 30_000, 100);
    const exportedRows = (table: string) => parquetRowCount(path.join(exportDir, `${table}.parquet`));
    expect(await exportedRows('sales')).toBe(20);

    // Redis dies with everything in it. The replica keeps serving; status answers within its deadline.
    const died = new Promise((r) => redis!.once('exit', r));
    redis.kill('SIGKILL');
    await died;
    await writeFile(path.join(dataDir, 'sales', 'c.csv'), csv(21, 2)); // changed while Redis is away
    const t0 = Date.now();
    const res = await fetch(`http://127.0.0.1:${apiPort}/v1/status`, { signal: AbortSignal.timeout(5_000) });
    const outage = (await res.json()) as { redis: { reachable: boolean; error: string }; tables: { name: string }[] };
    console.log(`status during the outage answered in ${Date.now() - t0} ms: ${JSON.stringify(outage.redis)}`);
    expect(res.status).toBe(200);
    expect(outage.redis.reachable).toBe(false);
    expect(outage.tables.map((t) => t.name).sort()).toEqual(['sales', 'weather']);
    expect(await count('weather')).toBe(300);
    // Every endpoint answers within its deadline while Redis is away.
    for (const [method, p, body] of [
      ['GET', '/v1/tables', undefined],
      ['GET', '/v1/tables/sales', undefined],
      ['GET', '/v1/writes/sales.1-0', undefined],
      ['POST', '/v1/tables/sales/upsert', { key: ['id'], rows: [{ id: 1, temp: 1 }] }],
      ['GET', '/readyz', undefined],
      ['GET', '/metrics', undefined],
    ] as const) {
      const started = Date.now();
      const r = await fetch(`http://127.0.0.1:${apiPort}${p}`, { method, headers: { 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(5_000) });
      console.log(`${method} ${p} during the outage: ${r.status} in ${Date.now() - started} ms`);
      expect(Date.now() - started, `${method} ${p}`).toBeLessThan(3_000);
      if (p.startsWith('/v1/tables/sales/upsert')) expect(r.status).toBe(503); // not queued, and it says so
    }

    // Redis comes back empty. Watch every table and export without pause until the tables are whole again.
    redis = startRedis(redisPort);
    const restarted = Date.now();
    const problems: string[] = [];
    let healedAt = 0;
    while (Date.now() - restarted < HEAL_BOUND_MS + 5_000) {
      const [weather, sales] = [await count('weather'), await count('sales')];
      if (typeof weather !== 'number' || weather !== 300) problems.push(`weather: ${weather}`);
      if (typeof sales !== 'number' || (sales !== 20 && sales !== 22)) problems.push(`sales: ${sales}`);
      const files = await readdir(exportDir).catch(() => []);
      for (const t of ['weather', 'sales']) if (!files.includes(`${t}.parquet`)) problems.push(`export ${t}.parquet missing`);
      if (sales === 22 && weather === 300) {
        healedAt = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`every table whole ${healedAt - restarted} ms after Redis came back empty`);
    expect(problems).toEqual([]);
    expect(healedAt, 'sales with the file added during the outage').toBeGreaterThan(0);
    expect(healedAt - restarted).toBeLessThan(HEAL_BOUND_MS);

    // The exports follow the rebuilt versions (written again, never deleted on the way).
    await waitFor('exports of the rebuilt versions', async () => {
      const s = (await (await fetch(`http://127.0.0.1:${apiPort}/v1/status`)).json()) as { tables: { name: string; version: number; rows: number }[]; exports: { table: string; version: number; rows: number }[]; redis: { reachable: boolean; folderRecord?: string } };
      return s.redis.reachable && s.redis.folderRecord === 'complete' && s.tables.every((t) => s.exports.some((e) => e.table === t.name && e.version === t.version && e.rows === t.rows));
    }, 30_000, 200);
    // sales was written again with its new file (an inode cannot tell: a rename frees one a later export may reuse).
    expect(await exportedRows('sales')).toBe(22);
    expect(await exportedRows('weather')).toBe(300);

    // A write made after the loss is applied to the files and becomes visible.
    const w = await post(apiPort, '/v1/tables/sales/upsert', { key: ['id'], rows: [{ id: 500, temp: 99 }] });
    expect(w.status).toBe(202);
    await waitFor('write applied and visible', async () => (await count('sales')) === 23, 30_000, 200);
    const s = await (await fetch(`http://127.0.0.1:${apiPort}/v1/writes/${w.body.writeId}`)).json();
    expect(s.status).toMatch(/applied|visible/);
    expect(procs.every((p) => p.alive)).toBe(true);
    const monitor = procs.find((p) => p.app === 'monitor')!;
    expect(monitor.logs.some((l) => /Redis holds no record of the folder/.test(l))).toBe(true);
  }, 150_000);
});
