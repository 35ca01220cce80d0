import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** Redis URL for tests (a real server; never a mock). */
export const TEST_REDIS_URL = process.env.FLASHDUCK_TEST_REDIS_URL ?? process.env.FLASHDUCK_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A prefix no other test or deployment uses. */
export function uniquePrefix(label = 't'): string {
  return `fdtest-${label}-${randomBytes(4).toString('hex')}`;
}

/**
 * Deletes every key under a prefix (and only those: other suites may share the server).
 * Never FLUSHALL/FLUSHDB.
 */
export async function deletePrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 2 });
  try {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}
