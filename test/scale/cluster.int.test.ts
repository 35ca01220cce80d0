import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, deletePrefix, removeDir, tempDir, uniquePrefix } from '../helpers.js';
import { startRedisCluster, type RedisCluster } from '../redis-servers.js';
import { runScenario, type ScenarioResult } from './scenario.js';

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
});
