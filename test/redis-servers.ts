import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { redisAnswers } from '@flashduck/cli';
import { freePort, waitFor } from './helpers.js';

/** A redis-server process of a test, stopped by `stop`. */
export interface RedisServer {
  readonly port: number;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a private redis-server (no persistence unless `args` say so) on a free port in `dir`. */
export async function startRedisServer(dir: string, args: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction', ...args], { stdio: 'ignore' });
  await waitFor(`redis-server on ${port}`, () => redisAnswers(`redis://127.0.0.1:${port}`, 200), 10_000, 50);
  return serverOf(port, proc);
}

function serverOf(port: number, proc: ChildProcess): RedisServer {
  return {
    port,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

function cli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A local Redis Cluster of `masters` masters (and `replicas` replicas of each), torn down by `stop`. */
export interface RedisCluster {
  readonly servers: RedisServer[];
  /** `redis+cluster://127.0.0.1:<p1>,…` */
  readonly url: string;
  /** `127.0.0.1:<p1>,…` (FLASHDUCK_REDIS_CLUSTER_NODES) */
  readonly nodes: string;
  /** Keys held by each master. */
  keysPerNode(): number[];
  /** The server that is master for `key`'s slot now. */
  masterOf(key: string): RedisServer;
  stop(): Promise<void>;
}

/**
 * Starts `masters × (1 + replicas)` redis-servers with cluster mode on and joins them with
 * `redis-cli --cluster create`, then waits until every node reports `cluster_state:ok`. A master that stops
 * answering for `nodeTimeoutMs` is replaced by its replica.
 */
export async function startRedisCluster(dir: string, masters = 3, replicas = 0, nodeTimeoutMs = 5_000): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const nodeDir = path.join(dir, `node-${i}`);
      servers.push(await startRedisServer(nodeDir, ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', String(nodeTimeoutMs)]));
    }
    const addrs = servers.map((s) => `127.0.0.1:${s.port}`);
    const r = spawnSync('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8' });
    if (r.status !== 0 || !/All 16384 slots covered/.test(r.stdout)) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
    const alive = () => servers.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null);
    await waitFor('cluster_state:ok on every node', () => servers.every((s) => /cluster_state:ok/.test(cli(s.port, 'cluster', 'info'))), 20_000, 100);
    if (replicas) await waitFor('replicas in sync', () => servers.every((s) => !/role:slave/.test(cli(s.port, 'info', 'replication')) || /master_link_status:up/.test(cli(s.port, 'info', 'replication'))), 20_000, 100);
    return {
      servers,
      url: `redis+cluster://${addrs.join(',')}`,
      nodes: addrs.join(','),
      keysPerNode: () => servers.map((s) => Number(cli(s.port, 'dbsize').trim())),
      masterOf(key: string) {
        const probe = alive()[0]!;
        const slot = Number(cli(probe.port, 'cluster', 'keyslot', key).trim());
        for (const line of cli(probe.port, 'cluster', 'nodes').trim().split('\n')) {
          const [, addr, flags, , , , , state, ...ranges] = line.split(' ');
          if (!flags!.includes('master') || flags!.includes('fail') || state !== 'connected') continue;
          for (const r of ranges) {
            const [lo, hi] = r.split('-').map(Number) as [number, number];
            if (slot >= lo && slot <= (hi ?? lo)) return servers.find((s) => addr!.startsWith(`127.0.0.1:${s.port}@`))!;
          }
        }
        throw new Error(`no master serves slot ${slot}`);
      },
      async stop() {
        await Promise.all(servers.map((s) => s.stop()));
      },
    };
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
}

/** A master, one replica and one Sentinel watching them, torn down by `stop`. */
export interface SentinelSetup {
  readonly master: RedisServer;
  readonly replica: RedisServer;
  readonly sentinel: RedisServer;
  /** `redis+sentinel://127.0.0.1:<sentinel>/<name>` */
  readonly url: string;
  readonly name: string;
  /** Port of the server Sentinel currently names as master. */
  masterPort(): number;
  stop(): Promise<void>;
}

/** Starts a master, a replica of it and a Sentinel (quorum 1, down after `downAfterMs`). */
export async function startSentinelSetup(dir: string, name = 'fdmaster', downAfterMs = 1_000): Promise<SentinelSetup> {
  const master = await startRedisServer(path.join(dir, 'master'));
  const replica = await startRedisServer(path.join(dir, 'replica'), ['--replicaof', '127.0.0.1', String(master.port)]);
  await waitFor('replica in sync', () => /master_link_status:up/.test(cli(replica.port, 'info', 'replication')), 10_000, 100);
  const sentinelDir = path.join(dir, 'sentinel');
  await mkdir(sentinelDir, { recursive: true });
  const conf = path.join(sentinelDir, 'sentinel.conf');
  const sentinelPort = await freePort();
  await writeFile(
    conf,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${sentinelDir}`,
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      `sentinel failover-timeout ${name} 10000`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  await waitFor('sentinel up', () => redisAnswers(`redis://127.0.0.1:${sentinelPort}`, 200), 10_000, 50);
  const sentinel = serverOf(sentinelPort, proc);
  return {
    master,
    replica,
    sentinel,
    name,
    url: `redis+sentinel://127.0.0.1:${sentinelPort}/${name}`,
    masterPort: () => Number(cli(sentinelPort, 'sentinel', 'get-master-addr-by-name', name).trim().split('\n')[1]),
    async stop() {
      await Promise.all([sentinel.stop(), replica.stop(), master.stop()]);
    },
  };
}
