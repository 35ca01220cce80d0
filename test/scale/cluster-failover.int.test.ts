import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportsCurrent, query, removeDir, rows, tempDir, uniquePrefix, waitFor, writeAtomic } from '../helpers.js';
import { startRedisCluster, type RedisCluster } from '../redis-servers.js';
import { startStack, type Stack } from './scenario.js';

/**
 * A Redis Cluster with a replica per master: SIGKILL the master that holds the queues (and with them every
 * table's scan diffs and snapshot events). The cluster promotes its replica; every component follows, and a
 * file change, a write and an export made after the kill all arrive.
 */
describe('Redis Cluster master failover', () => {
  const prefix = uniquePrefix('clfail');
  let dir: string;
  let dataDir: string;
  let cluster: RedisCluster;
  let stack: Stack;

  beforeAll(async () => {
    dir = await tempDir('clfail');
    dataDir = path.join(dir, 'data');
    await mkdir(path.join(dataDir, 'files'), { recursive: true });
    await mkdir(path.join(dataDir, 'accounts'), { recursive: true });
    await writeFile(path.join(dataDir, 'files', 'a.csv'), 'id,src\n1,a\n');
    await writeFile(path.join(dataDir, 'accounts', 'base.csv'), 'id,balance\n1,10\n2,20\n');
    cluster = await startRedisCluster(path.join(dir, 'redis'), 3, 1, 2_000);
    stack = await startStack({
      label: 'clf',
      prefix,
      dataDir,
      work: dir,
      counts: { monitor: 1, cacher: 1, 'query-api': 1, exporter: 1, 'write-applier': 1 },
      redisEnv: () => ({ FLASHDUCK_REDIS_URL: cluster.url }),
      // A lease key written on the dying master may reach its replica while its release does not: that table's
      // work then waits for the lease TTL once. Short leases keep that wait short here.
      extraEnv: { EXPORTER_LEASE_MS: '5000', WRITER_LEASE_MS: '5000', FLASHDUCK_QUEUE_STALL_MS: '3000' },
    });
    await waitFor('served', async () => (await rows(stack.ports[0]!, 'SELECT (SELECT count(*) FROM files) + (SELECT count(*) FROM accounts) AS n'))[0]?.n === 3, 60_000, 200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all((stack?.procs ?? []).map((p) => p.kill('SIGKILL')));
    await cluster?.stop();
    await removeDir(dir);
  });

  it('SIGKILL of the queues master: files, writes and exports carry on on the promoted replica', async () => {
    const port = stack.ports[0]!;
    const victim = cluster.masterOf(`${prefix}:{q}:x`);
    await victim.stop();
    const killedAt = Date.now();
    await waitFor('replica promoted', () => cluster.masterOf(`${prefix}:{q}:x`) !== victim, 30_000, 100);
    const promotedMs = Date.now() - killedAt;

    await writeAtomic(path.join(dataDir, 'files', 'b.csv'), 'id,src\n2,b\n');
    const writeId = await waitFor('write accepted', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/tables/accounts/upsert`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: ['id'], rows: [{ id: 2, balance: 22 }, { id: 3, balance: 30 }] }),
        signal: AbortSignal.timeout(10_000),
      });
      return res.status === 202 ? ((await res.json()) as { writeId: string }).writeId : undefined;
    }, 60_000, 200);
    const written = await query(port, 'SELECT id, balance FROM accounts ORDER BY id', { after: writeId });
    expect(written.status, JSON.stringify(written.body)).toBe(200);
    expect(written.body.rows).toEqual([
      { id: 1, balance: 10 },
      { id: 2, balance: 22 },
      { id: 3, balance: 30 },
    ]);
    await waitFor('new file served', async () => (await rows(port, 'SELECT count(*) AS n FROM files'))[0]?.n === 2, 60_000, 200);
    const servedMs = Date.now() - killedAt;
    // Releases that fail while the master is down are retried, so exports catch up within seconds (at worst one
    // lease TTL, for a lease whose release was lost with the master).
    await waitFor('exports current', () => exportsCurrent(port, 2), 30_000, 200).catch(async (err: unknown) => {
      const exporter = stack.procs.find((p) => p.app === 'exporter')!;
      const status = await (await fetch(`http://127.0.0.1:${port}/v1/status`)).text();
      throw new Error(`${(err as Error).message}\nstatus: ${status}\nexporter log:\n${exporter.logs.slice(-40).join('\n')}`);
    });
    for (const p of stack.procs) expect(p.alive, `${p.app} still running`).toBe(true);
    const replaced = stack.procs.flatMap((p) => p.logs.filter((l) => l.includes('"msg":"queue worker took no job')).map(() => p.app));
    console.log(
      `cluster failover: replica promoted ${promotedMs} ms after the master's SIGKILL; file change and write served ${servedMs} ms, exports current ${Date.now() - killedAt} ms after it` +
        `; queue workers replaced: ${replaced.length ? replaced.join(', ') : 'none'}`,
    );
  }, 180_000);
});
