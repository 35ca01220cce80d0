import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { parseRedisTarget } from '../redis-target.js';

/** Redis URL for tests (a real server; never a mock). */
export const TEST_REDIS_URL = process.env.FLASHDUCK_TEST_REDIS_URL ?? process.env.FLASHDUCK_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * The settings every component of a test or benchmark stack shares: Redis and prefix, the data folder, and
 * the export, scratch and cache folders under `work`. Callers add their own tuning on top.
 */
export function stackEnv(prefix: string, dataDir: string, work: string, redisUrl: string = TEST_REDIS_URL): Record<string, string> {
  return {
    FLASHDUCK_REDIS_URL: redisUrl,
    FLASHDUCK_PREFIX: prefix,
    FLASHDUCK_DATA_DIR: dataDir,
    FLASHDUCK_EXPORT_DIR: path.join(work, 'exports'),
    CACHER_WORK_DIR: path.join(work, 'cacher'),
    EXPORTER_WORK_DIR: path.join(work, 'exporter'),
    WRITER_WORK_DIR: path.join(work, 'writer'),
    QUERY_API_HOST: '127.0.0.1',
    QUERY_API_CACHE_DIR: path.join(work, 'cache'),
    // The PostgreSQL protocol is off unless a test asks for it (on a port of its own).
    QUERY_API_PG_PORT: '0',
  };
}

/** A prefix no other test or deployment uses. */
export function uniquePrefix(label = 't'): string {
  return `fdtest-${label}-${randomBytes(4).toString('hex')}`;
}

async function deleteOnNode(redis: Redis, prefix: string, clusterNode: boolean): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    // On a cluster node the keys of one SCAN page live in many slots: one key per call there.
    if (clusterNode) for (const k of keys) deleted += await redis.unlink(k);
    else if (keys.length) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/**
 * Deletes every key under a prefix (and only those: other suites may share the server), on one server or
 * on every master of a Redis Cluster (`redis+cluster://…`). Never FLUSHALL/FLUSHDB.
 */
export async function deletePrefix(url: string, prefix: string): Promise<number> {
  const target = parseRedisTarget(url);
  if (target.kind === 'cluster') {
    const cluster = new Cluster([...target.nodes], { redisOptions: { maxRetriesPerRequest: 2 } });
    try {
      await new Promise<void>((resolve, reject) => {
        cluster.once('ready', resolve);
        cluster.once('error', reject);
      });
      let deleted = 0;
      for (const node of cluster.nodes('master')) deleted += await deleteOnNode(node, prefix, true);
      return deleted;
    } finally {
      cluster.disconnect();
    }
  }
  if (target.kind !== 'single') throw new Error('deletePrefix: use the master URL, not a Sentinel URL');
  const redis = new Redis(url, { maxRetriesPerRequest: 2 });
  try {
    return await deleteOnNode(redis, prefix, false);
  } finally {
    redis.disconnect();
  }
}
