import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lease, QUEUES, createKeys, type TableMeta } from '@flashduck/core';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '@flashduck/core/testing';
import { loadCacherConfig } from '../config.js';
import { publishVersion } from './rebuild-table.js';

/**
 * A build that began before Redis lost its data must not publish into the Redis that came back: the version it
 * built lists parts the new Redis does not hold, and a replica could not load the table until the next change.
 */
describe('publishing a version across a Redis data loss', () => {
  const prefix = uniquePrefix('publish');
  const keys = createKeys(prefix);
  const table = 'orders';
  let redis: Redis;
  let queue: Queue;
  const config = loadCacherConfig({ FLASHDUCK_REDIS_URL: TEST_REDIS_URL, FLASHDUCK_PREFIX: prefix, FLASHDUCK_DATA_DIR: '/tmp' });
  const deps = () => ({ redis, keys, config, exportQueue: queue });
  const lease = () => new Lease(redis, { owner: keys.tableBuildLease(table), epoch: keys.tableBuildEpoch(table) }, 3_000, 'cacher-test');
  const meta = (version: number, sourceGen: number): TableMeta => ({
    v: 2,
    table,
    version,
    parts: [{ id: 'a1b2c3d4e5f60718', format: 'duckdb', chunks: 1, bytes: 10, rows: 1, members: 1, columns: [{ name: 'id', type: 'BIGINT' }] }],
    bytes: 10,
    rows: 1,
    columns: [{ name: 'id', type: 'BIGINT', files: ['a.csv'] }],
    files: [],
    errors: [],
    conflicts: [],
    sourceGen,
    buildMs: 1,
    updatedAt: Date.now(),
    cause: 'build',
    engine: 'test',
  });
  /** What a monitor's scan writes: the table's manifest generation. */
  const recordGen = (gen: number) => redis.hset(keys.tableState(table), 'gen', gen);
  const servedVersion = async () => redis.hget(keys.tableMeta(table), 'version');

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    queue = new Queue(QUEUES.snapshots, { connection: redis, prefix: keys.bullPrefix });
  });
  afterAll(async () => {
    await queue.close();
    redis.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  it('publishes under its lease, and refuses once Redis lost the manifest it was built from', async () => {
    await recordGen(7);
    const building = lease();
    expect(await building.tryAcquire()).toBe(true);
    expect(await publishVersion(deps(), table, building, meta(1, 7), 7, new Map(), [])).toBe(true);
    expect(await servedVersion()).toBe('1');

    // Redis loses its data while the next build (of generation 7) runs.
    await deletePrefix(TEST_REDIS_URL, prefix);
    // The build's renewal finds its lease gone and does not take it again.
    expect(await building.renew()).toBe(false);
    expect(await publishVersion(deps(), table, building, meta(2, 7), 7, new Map(), [])).toBe(false);
    // Even under a lease taken anew, the version is refused: Redis holds no manifest, or only a newer era's
    // generation 1 once the monitor recorded the folder again.
    const again = lease();
    expect(await again.tryAcquire()).toBe(true);
    expect(await publishVersion(deps(), table, again, meta(2, 7), 7, new Map(), [])).toBe(false);
    await recordGen(1);
    expect(await publishVersion(deps(), table, again, meta(2, 7), 7, new Map(), [])).toBe(false);
    expect(await servedVersion()).toBeNull();

    // A build of the new era publishes.
    expect(await publishVersion(deps(), table, again, meta(1, 1), 1, new Map(), [])).toBe(true);
    expect(await servedVersion()).toBe('1');
  });
});
