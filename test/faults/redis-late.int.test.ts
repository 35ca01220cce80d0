import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppProcess, freePort, query, removeDir, tempDir, waitFor } from '../helpers.js';

describe('Redis unreachable at start', () => {
  const procs: AppProcess[] = [];
  let redis: ChildProcess | null = null;
  let work = '';
  let redisPort = 0;
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    if (redis) spawnSync('redis-cli', ['-p', String(redisPort), 'shutdown', 'nosave']);
    if (work) await removeDir(work);
  });

  it('components wait with /readyz saying not ready, then work once Redis comes up', async () => {
    work = await tempDir('late-redis');
    const dataDir = path.join(work, 'data');
    await mkdir(path.join(dataDir, 't'), { recursive: true });
    await writeFile(path.join(dataDir, 't', 'a.csv'), 'id\n1\n');
    redisPort = await freePort();
    const [apiPort, cacherPort, monitorPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      FLASHDUCK_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      FLASHDUCK_PREFIX: 'fdlate',
      FLASHDUCK_DATA_DIR: dataDir,
      MONITOR_POLL_MS: '200',
      MONITOR_SETTLE_MS: '0',
      CACHER_WORK_DIR: path.join(work, 'cacher'),
      QUERY_API_HOST: '127.0.0.1',
      QUERY_API_CACHE_DIR: path.join(work, 'cache'),
      QUERY_API_REFRESH_MS: '300',
    };
    procs.push(
      AppProcess.start('query-api', { ...env, QUERY_API_PORT: String(apiPort) }),
      AppProcess.start('cacher', { ...env, CACHER_METRICS_PORT: String(cacherPort) }),
      AppProcess.start('monitor', { ...env, MONITOR_METRICS_PORT: String(monitorPort) }),
    );
    const ready = async (port: number) => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status;
    await waitFor('health endpoints up without Redis', async () => (await ready(apiPort)) === 503 && (await ready(cacherPort)) === 503 && (await ready(monitorPort)) === 503, 20_000, 200);
    expect((await fetch(`http://127.0.0.1:${apiPort}/healthz`)).status).toBe(200);
    const waiting = await (await fetch(`http://127.0.0.1:${cacherPort}/readyz`)).json();
    expect(waiting.reason).toMatch(/waiting for Redis/);
    await new Promise((r) => setTimeout(r, 1500)); // still waiting, still alive
    for (const p of procs) expect(p.alive, p.app).toBe(true);

    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitFor('all ready', async () => (await ready(apiPort)) === 200 && (await ready(cacherPort)) === 200 && (await ready(monitorPort)) === 200, 30_000, 200);
    await waitFor('table served', async () => (await query(apiPort, 'SELECT count(*) AS n FROM t')).body.rows?.[0]?.n === 1, 30_000, 200);
  }, 90_000);
});
