import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeys, createLogger, createRedis, registry } from '../src/index.js';
import { superviseWorker } from '../src/queue/index.js';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../src/testing/index.js';

describe('supervised queue worker', () => {
  const prefix = uniquePrefix('queue');
  const keys = createKeys(prefix);
  const log = createLogger('silent');
  afterAll(async () => {
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  it('replaces a worker that takes no job while jobs wait, and the job is done once by the new one', async () => {
    const queueConn = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue('work', { connection: queueConn, prefix: keys.bullPrefix });
    // The first worker's connection never gets anywhere (as a blocking connection wedged by a failover would);
    // every later one is good.
    let made = 0;
    const done: string[] = [];
    const supervised = superviseWorker({
      name: 'work',
      queue,
      log,
      stallMs: 1_000,
      connect: () => createRedis({ redisUrl: made++ === 0 ? 'redis://127.0.0.1:1' : TEST_REDIS_URL, redisClusterNodes: null }, 'worker', log),
      processor: async (job) => {
        done.push(String(job.id));
        return 'ok';
      },
      workerOptions: { prefix: keys.bullPrefix },
      attach: (w) => w.on('error', () => undefined),
    });
    try {
      await queue.add('j', { n: 1 }, { jobId: 'job-1' });
      const deadline = Date.now() + 15_000;
      while (done.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(done).toEqual(['job-1']);
      expect(made).toBe(2);
      expect(await registry.getSingleMetric('flashduck_queue_workers_replaced_total')?.get()).toMatchObject({ values: [{ value: 1, labels: { queue: 'work' } }] });
      // A healthy, idle worker with nothing waiting is left alone.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(made).toBe(2);
    } finally {
      await supervised.close();
      await queue.close();
      queueConn.disconnect();
    }
  }, 30_000);
});
