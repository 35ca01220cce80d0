import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, TEST_REDIS_URL, flashduckEnv, startApps, stopApps, tempDir, uniquePrefix, waitFor } from '../helpers.js';

/**
 * A file the manifest lists is gone when the cacher reads it, and the monitor reports nothing more (it stopped, or
 * the data folder was unmounted): the cacher keeps building the table again, with one retry pending at a time,
 * and the table keeps its last version until the file is back.
 */
describe('a file gone while no monitor reports it', () => {
  const prefix = uniquePrefix('gonefile');
  const redis = new Redis(TEST_REDIS_URL);
  let dataDir: string;
  let work: string;
  let procs: AppProcess[] = [];
  let env: Record<string, string>;
  const meta = async () => JSON.parse((await redis.hget(`${prefix}:{sales}:meta`, 'json')) ?? 'null') as { version: number; rows: number } | null;
  /** Build-again jobs waiting for their time (a reconcile's job may wait a moment too: its retry while a build holds the lease). */
  const pendingRetries = async () => (await redis.zrange(`${prefix}:{q}:scan-diffs:delayed`, 0, -1)).filter((id) => id.includes('-again-')).length;

  beforeAll(async () => {
    dataDir = await tempDir('gonefile-data');
    work = await tempDir('gonefile-work');
    env = { ...flashduckEnv(prefix, dataDir, work), MONITOR_POLL_MS: '100', MONITOR_SETTLE_MS: '0', CACHER_RECONCILE_MS: '200' };
    procs = await startApps(['monitor', 'cacher'], env);
  });
  afterAll(async () => {
    redis.disconnect();
    await stopApps(procs, prefix, dataDir, work);
  });

  it('is built again with one retry pending, not a pile of them, and the table is whole once the file is back', async () => {
    await mkdir(path.join(dataDir, 'sales'));
    await writeFile(path.join(dataDir, 'sales', 'a.csv'), 'id,amount\n1,10\n2,20\n');
    const first = await waitFor('the first version', async () => (await meta())?.rows === 2 && (await meta()), 20_000);
    // Builds wait while the test holds the build lease: the monitor records b.csv, then stops, and b.csv goes.
    const lease = `${prefix}:{sales}:build`;
    await redis.set(lease, 'held-by-the-test|0', 'PX', 60_000);
    await writeFile(path.join(dataDir, 'sales', 'b.csv'), 'id,amount\n3,30\n');
    await waitFor('b.csv in the manifest', async () => (await redis.hexists(`${prefix}:{sales}:files`, 'sales/b.csv')) === 1, 20_000);
    const [monitor, cacher] = procs as [AppProcess, AppProcess];
    await monitor.kill('SIGTERM');
    await rm(path.join(dataDir, 'sales', 'b.csv'));
    await redis.del(lease);
    await cacher.waitForLog(/files were gone while they were read; building the table again/, 20_000);

    // Reconciles (every 200 ms here) find the table behind and build it, each build deferred: one retry is
    // pending at a time (before, each deferred build queued one more, and the retries piled up).
    let most = 0;
    for (let i = 0; i < 30; i++) {
      most = Math.max(most, await pendingRetries());
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(most).toBeLessThanOrEqual(1);
    expect(cacher.logs.filter((l) => l.includes('files were gone while they were read')).length).toBeGreaterThan(1);
    // Meanwhile the table keeps its last version.
    expect(await meta()).toMatchObject({ version: first.version, rows: 2 });

    // The file comes back and a monitor runs again: it records the file, and the table is whole.
    await writeFile(path.join(dataDir, 'sales', 'b.csv'), 'id,amount\n3,30\n');
    procs.push(...(await startApps(['monitor'], env)));
    await waitFor('b.csv built', async () => (await meta())?.rows === 3, 20_000);
  }, 60_000);
});
