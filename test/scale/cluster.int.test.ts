import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, deletePrefix, query, removeDir, rows, tempDir, uniquePrefix, waitFor } from '../helpers.js';
import { startRedisCluster, startRedisServer, type RedisCluster } from '../redis-servers.js';
import { runScenario, startStack, type ScenarioResult } from './scenario.js';

/**
 * A real 3-master Redis Cluster started here: the read path, the write path and exports run against it as
 * separate processes and answer exactly as they do against one Redis.
 */
describe('Redis Cluster: the same answers as one Redis', () => {
  let dir: string;
  let cluster: RedisCluster;
  const prefix = uniquePrefix('cluster');
  let single: ScenarioResult;

  beforeAll(async () => {
    dir = await tempDir('cluster');
    cluster = await startRedisCluster(path.join(dir, 'redis'), 3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dir);
  });

  it('runs the workload against one Redis (the reference)', async () => {
    single = await runScenario({ label: 'single', prefix, redisEnv: () => ({ FLASHDUCK_REDIS_URL: TEST_REDIS_URL }) });
    expect(single.instances).toEqual({ cacher: 1, exporter: 1, monitor: 1, 'query-api': 2, 'write-applier': 1 });
    expect((single.answers.changed as Record<string, unknown[]>).orders).toHaveLength(1);
    // Idempotency-Key: first queued, retried through the other replica answered again, reused with another body 422.
    expect(single.answers.idempotent).toEqual([202, null, 202, 'true', 422]);
    // The file change as a change feed: part-1.csv's 300 rows deleted, part-3.csv's 100 inserted.
    expect(single.answers.changes).toMatchObject({ count: 400, kinds: ['delete', 'insert'] });
  }, 180_000);

  it('runs the same workload against the cluster with separate processes, with equal answers, files and exports', async () => {
    expect(single, 'the reference run failed').toBeDefined();
    // Both spellings: a redis+cluster:// URL, and FLASHDUCK_REDIS_CLUSTER_NODES beside a plain URL.
    const result = await runScenario({
      label: 'cluster',
      prefix,
      redisEnv: (_component, i): Record<string, string> =>
        i % 2 === 0 ? { FLASHDUCK_REDIS_URL: cluster.url } : { FLASHDUCK_REDIS_URL: 'redis://unused:1', FLASHDUCK_REDIS_CLUSTER_NODES: cluster.nodes },
    });
    expect(result.answers).toEqual(single.answers);
    expect(result.ledgerFiles).toEqual(single.ledgerFiles);
    expect(result.exports).toEqual(single.exports);
    expect(result.instances).toEqual(single.instances);
    // The keys really are spread over the three masters (per-table hash tags land in different slots).
    const perNode = cluster.keysPerNode();
    expect(perNode.filter((n) => n > 0).length, `keys per node: ${perNode.join(', ')}`).toBe(3);
    console.log(`cluster: keys per master ${perNode.join(' / ')}; answers, ledger files (${result.ledgerFiles.length} rows) and ${Object.keys(result.exports).length} exports equal to one Redis`);
  }, 180_000);

  it('moves a running deployment from one Redis to the cluster with redis-cli --cluster import: no rebuild, queued writes kept', async () => {
    const source = await startRedisServer(path.join(dir, 'source'));
    const work = path.join(dir, 'migrate');
    const dataDir = path.join(work, 'data');
    await mkdir(path.join(dataDir, 'accounts'), { recursive: true });
    await writeFile(path.join(dataDir, 'accounts', 'a.csv'), `id,balance\n${Array.from({ length: 50 }, (_, i) => `${i},${i * 10}`).join('\n')}\n`);
    const counts = { monitor: 1, cacher: 1, 'query-api': 1, exporter: 1, 'write-applier': 0 };
    const migPrefix = uniquePrefix('mig');
    const before = await startStack({ label: 'single', prefix: migPrefix, dataDir, work, counts, redisEnv: () => ({ FLASHDUCK_REDIS_URL: `redis://127.0.0.1:${source.port}` }) });
    try {
      const port = before.ports[0]!;
      await waitFor('served on one Redis', async () => (await rows(port, 'SELECT count(*) AS n FROM accounts'))[0]?.n === 50, 60_000, 200);
      // No write-applier runs: this write stays queued in the stream and must survive the move.
      const res = await fetch(`http://127.0.0.1:${port}/v1/tables/accounts/upsert`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: ['id'], rows: [{ id: 7, balance: -7 }] }) });
      expect(res.status).toBe(202);
      const { writeId } = (await res.json()) as { writeId: string };
      const version = ((await (await fetch(`http://127.0.0.1:${port}/v1/tables/accounts`)).json()) as { version: number }).version;
      await Promise.all(before.procs.map((p) => p.kill('SIGTERM')));

      const imported = spawnSync('redis-cli', ['--cluster', 'import', `127.0.0.1:${cluster.servers[0]!.port}`, '--cluster-from', `127.0.0.1:${source.port}`, '--cluster-copy'], { encoding: 'utf8' });
      expect(imported.status, imported.stdout + imported.stderr).toBe(0);

      const after = await startStack({ label: 'moved', prefix: migPrefix, dataDir, work, counts: { ...counts, 'write-applier': 1 }, redisEnv: () => ({ FLASHDUCK_REDIS_URL: cluster.url }) });
      try {
        const p2 = after.ports[0]!;
        // Served at once from the imported snapshot (same version, no rebuild), then the queued write is applied.
        await waitFor('served from the cluster', async () => (await rows(p2, 'SELECT count(*) AS n FROM accounts'))[0]?.n === 50, 30_000, 100);
        expect(((await (await fetch(`http://127.0.0.1:${p2}/v1/tables/accounts`)).json()) as { version: number }).version).toBe(version);
        const r = await query(p2, 'SELECT balance FROM accounts WHERE id = 7', { after: writeId });
        expect(r.body.rows).toEqual([{ balance: -7 }]);
        const cacher = after.instances.find((x) => x.component === 'cacher')!.proc;
        expect(cacher.logs.filter((l) => l.includes('"msg":"rebuild started"')).length, 'rebuilds after the move: only the one the write caused').toBe(1);
      } finally {
        await Promise.all(after.procs.map((p) => p.kill('SIGTERM')));
      }
    } finally {
      await source.stop();
    }
  }, 120_000);
});
