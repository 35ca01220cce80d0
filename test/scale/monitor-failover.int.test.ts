import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, deletePrefix, removeDir, rows, tempDir, uniquePrefix, waitFor, writeAtomic } from '../helpers.js';
import { startRedisCluster, type RedisCluster } from '../redis-servers.js';
import { startStack, type Stack } from './scenario.js';

const LEASE_MS = 2_000;
const HEARTBEAT_MS = 300;

/**
 * Two monitors, one leader. SIGKILL the leader, change files while nobody scans: the standby takes the lease
 * within 2× its TTL and every change made in between arrives. The dead monitor leaves status after its TTL.
 */
describe('monitor failover', () => {
  const prefix = uniquePrefix('failover');
  let work: string;
  let dataDir: string;
  let stack: Stack;
  let redis: Redis;

  const owner = async () => (await redis.get(`${prefix}:{lease:monitor}:owner`))?.split(':')[0] ?? null;
  const statusInstances = async () => {
    const s = (await (await fetch(`http://127.0.0.1:${stack.ports[0]}/v1/status`)).json()) as { components: { component: string; instance: string; info: { role?: string } }[] };
    return s.components.filter((c) => c.component === 'monitor');
  };

  beforeAll(async () => {
    work = await tempDir('failover');
    dataDir = path.join(work, 'data');
    await mkdir(path.join(dataDir, 't'), { recursive: true });
    await writeFile(path.join(dataDir, 't', 'a.csv'), 'id,src\n1,a\n2,a\n');
    await writeFile(path.join(dataDir, 't', 'b.csv'), 'id,src\n3,b\n');
    redis = new Redis(TEST_REDIS_URL);
    stack = await startStack({
      label: 'fo',
      prefix,
      dataDir,
      work,
      counts: { monitor: 2, cacher: 1, 'query-api': 1, exporter: 0, 'write-applier': 0 },
      redisEnv: () => ({ FLASHDUCK_REDIS_URL: TEST_REDIS_URL }),
      extraEnv: { MONITOR_LEASE_MS: String(LEASE_MS), FLASHDUCK_HEARTBEAT_MS: String(HEARTBEAT_MS) },
    });
    await waitFor('table served', async () => (await rows(stack.ports[0]!, 'SELECT count(*) AS n FROM t'))[0]?.n === 3, 60_000, 200);
  }, 90_000);

  afterAll(async () => {
    await Promise.all((stack?.procs ?? []).map((p) => p.kill('SIGKILL')));
    redis?.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(work);
  });

  it('SIGKILL of the leader, twice: the standby takes over within 2× the lease TTL and no change made meanwhile is missed', async () => {
    const takeovers: number[] = [];
    const gone: number[] = [];
    let expected = 3;
    for (let round = 1; round <= 2; round++) {
      const leaderId = await waitFor('a leader', owner, 10_000, 50);
      const leader = stack.instances.find((x) => x.id === leaderId && x.proc.alive);
      expect(leader, `leader ${leaderId} is one of the running monitors`).toBeDefined();
      expect((await statusInstances()).map((c) => c.instance)).toContain(leaderId);

      await leader!.proc.kill('SIGKILL');
      const killedAt = Date.now();
      // The dead monitor leaves status once its heartbeat is older than its TTL (3 intervals).
      const left = waitFor('killed monitor gone from status', async () => !(await statusInstances()).some((c) => c.instance === leaderId), 10_000, 50).then(() => Date.now() - killedAt);
      // Changes while no monitor scans: a new file, an append to one file and a deleted file (then recreated).
      await writeAtomic(path.join(dataDir, 't', `new-${round}.csv`), `id,src\n${100 + round},new-${round}\n${200 + round},new-${round}\n`);
      await appendFile(path.join(dataDir, 't', 'a.csv'), `${300 + round},a\n`);
      await rm(path.join(dataDir, 't', 'b.csv'));
      expected += 2 + 1 - 1;
      const newLeader = await waitFor('another monitor holds the lease', async () => {
        const o = await owner();
        return o && o !== leaderId ? o : undefined;
      }, LEASE_MS * 4, 25);
      takeovers.push(Date.now() - killedAt);
      expect(stack.instances.find((x) => x.id === newLeader)?.proc.alive).toBe(true);

      const served = await waitFor('every change made during the failover is served', async () => {
        const r = await rows(stack.ports[0]!, 'SELECT src, count(*) AS n FROM t GROUP BY src ORDER BY src');
        return r.reduce((s, x) => s + Number(x.n), 0) === expected && !r.some((x) => x.src === 'b') ? r : undefined;
      }, 20_000, 100);
      expect(served).toContainEqual({ src: `new-${round}`, n: 2 });
      expect(served).toContainEqual({ src: 'a', n: 2 + round });

      gone.push(await left);
      const monitors = await statusInstances();
      expect(monitors.filter((c) => c.info.role === 'leader').map((c) => c.instance)).toEqual([newLeader]);

      // Bring b.csv back and restart a monitor (a new pod) for the next round.
      await writeAtomic(path.join(dataDir, 't', 'b.csv'), 'id,src\n3,b\n');
      expected += 1;
      await stack.start('monitor', 1 + round);
      await waitFor('restarted monitor in status as standby', async () => (await statusInstances()).some((c) => c.instance === `fo-monitor-${1 + round}` && c.info.role === 'standby'), 10_000, 100);
      await waitFor('b back', async () => (await rows(stack.ports[0]!, "SELECT count(*) AS n FROM t WHERE src = 'b'"))[0]?.n === 1, 20_000, 100);
    }
    console.log(`monitor failover: takeover after SIGKILL in ${takeovers.join(' ms, ')} ms (limit ${2 * LEASE_MS} ms = 2 × lease TTL); dead monitor left status after ${gone.join(' ms, ')} ms (TTL ${3 * HEARTBEAT_MS} ms)`);
    for (const t of takeovers) expect(t).toBeLessThanOrEqual(2 * LEASE_MS);
    for (const g of gone) expect(g).toBeLessThanOrEqual(3 * HEARTBEAT_MS + 1_500);
  }, 120_000);
});

/**
 * On a Redis Cluster, with a third monitor started just before the leader is SIGKILLed (a pod rescheduled as
 * another dies): a new file is served within the lease TTL plus a few seconds, every round.
 */
describe('monitor failover on a Redis Cluster with a monitor starting', () => {
  const prefix = uniquePrefix('clfo');
  let work: string;
  let dataDir: string;
  let stack: Stack;
  let cluster: RedisCluster;
  let redis: Cluster;

  beforeAll(async () => {
    work = await tempDir('clfo');
    dataDir = path.join(work, 'data');
    await mkdir(path.join(dataDir, 't'), { recursive: true });
    await writeFile(path.join(dataDir, 't', 'a.csv'), 'id,src\n1,a\n');
    cluster = await startRedisCluster(path.join(work, 'redis'), 3, 0);
    redis = new Cluster(cluster.nodes.split(',').map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })));
    stack = await startStack({
      label: 'clfo',
      prefix,
      dataDir,
      work,
      counts: { monitor: 2, cacher: 1, 'query-api': 1, exporter: 0, 'write-applier': 0 },
      redisEnv: () => ({ FLASHDUCK_REDIS_URL: cluster.url }),
      extraEnv: { MONITOR_LEASE_MS: String(LEASE_MS), FLASHDUCK_HEARTBEAT_MS: String(HEARTBEAT_MS) },
    });
    await waitFor('table served', async () => (await rows(stack.ports[0]!, 'SELECT count(*) AS n FROM t'))[0]?.n === 1, 60_000, 200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all((stack?.procs ?? []).map((p) => p.kill('SIGKILL')));
    redis?.disconnect();
    await cluster?.stop();
    await removeDir(work);
  });

  it('serves a file added at the kill within the lease TTL plus 3 s, in every round', async () => {
    const owner = async () => (await redis.get(`${prefix}:{lease:monitor}:owner`))?.split(':')[0] ?? null;
    const visible: number[] = [];
    for (let round = 1; round <= 4; round++) {
      const leaderId = await waitFor('a leader', owner, 10_000, 50);
      const leader = stack.instances.find((x) => x.id === leaderId && x.proc.alive)!;
      await stack.start('monitor', 1 + round); // starting while the leader dies
      await leader.proc.kill('SIGKILL');
      const killedAt = Date.now();
      await writeAtomic(path.join(dataDir, 't', `new-${round}.csv`), `id,src\n${100 + round},new\n`);
      await waitFor(`new-${round}.csv served`, async () => (await rows(stack.ports[0]!, 'SELECT count(*) AS n FROM t'))[0]?.n === 1 + round, 60_000, 50);
      visible.push(Date.now() - killedAt);
    }
    console.log(`cluster monitor failover: a file added at the kill was served after ${visible.join(' ms, ')} ms (lease TTL ${LEASE_MS} ms)`);
    for (const v of visible) expect(v).toBeLessThanOrEqual(LEASE_MS + 3_000);
  }, 240_000);
});
