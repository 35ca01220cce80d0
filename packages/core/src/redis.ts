import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { CommonConfig } from './config.js';
import type { Logger } from './logger.js';
import { counter } from './metrics.js';
import { describeRedisTarget, parseRedisTarget } from './redis-target.js';

const reconnects = counter('flashduck_redis_reconnects_total', 'Redis connections re-established after an error', ['role']);

/** A single Redis or a Redis Cluster client: everything FlashDuck does works on both. */
export type RedisClient = Redis | Cluster;

/**
 * What a client is for:
 * - `worker`: loops and blocking consumers, retries forever while Redis is away (BullMQ requires this);
 * - `request`: request paths, fail fast instead of queueing commands while disconnected;
 * - `subscriber`: pub/sub only.
 */
export type RedisRole = 'worker' | 'request' | 'subscriber';

/**
 * Connection settings from a Redis URL and an optional CA file: `redis://user:password@host:port/db` (ACL
 * user), `rediss://…` for TLS (verified against the system CAs, or `caFile`).
 */
export function connectionOptions(url: string, caFile?: string): RedisOptions {
  const u = new URL(url);
  const options: RedisOptions = {};
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') options.tls = tlsOptions(caFile);
  return options;
}

function tlsOptions(caFile: string | undefined): NonNullable<RedisOptions['tls']> {
  return caFile ? { ca: readFileSync(caFile) } : {};
}

type RedisConfig = Pick<CommonConfig, 'redisUrl' | 'redisClusterNodes'> & { redisCaFile?: string | undefined };

/**
 * Opens a client for whatever `config` points at: one server, a Redis Cluster or a Sentinel-managed master
 * (see {@link parseRedisTarget}). `options` are the per-connection settings of the role.
 */
function openClient(config: RedisConfig, options: RedisOptions, retry: (times: number) => number | null): RedisClient {
  const target = parseRedisTarget(config.redisUrl, config.redisClusterNodes);
  if (target.kind === 'single') return new Redis(config.redisUrl, { ...connectionOptions(config.redisUrl, config.redisCaFile), ...options, retryStrategy: retry });
  const auth: RedisOptions = {
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.tls ? { tls: tlsOptions(config.redisCaFile) } : {}),
  };
  if (target.kind === 'cluster') {
    return new Cluster([...target.nodes], {
      redisOptions: { ...options, ...auth },
      enableOfflineQueue: options.enableOfflineQueue ?? true,
      enableReadyCheck: options.enableReadyCheck ?? true,
      clusterRetryStrategy: retry,
      ...(options.lazyConnect ? { lazyConnect: true } : {}),
    });
  }
  return new Redis({
    ...options,
    ...auth,
    sentinels: [...target.sentinels],
    name: target.name,
    db: target.db,
    ...(target.sentinelUsername ? { sentinelUsername: target.sentinelUsername } : {}),
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    ...(target.tls ? { enableTLSForSentinelMode: true, sentinelTLS: tlsOptions(config.redisCaFile) } : {}),
    // Follows a failover as soon as the sentinels announce it instead of waiting for the old master to fail.
    failoverDetector: true,
    retryStrategy: retry,
    sentinelRetryStrategy: (times) => retry(times) ?? null,
  });
}

/** Opens a client for a role. Every client logs its errors (an unhandled 'error' would crash the process). */
export function createRedis(config: RedisConfig, role: RedisRole, log: Logger, name: string = role): RedisClient {
  const options: RedisOptions = {
    connectionName: `flashduck:${name}`,
    maxRetriesPerRequest: role === 'request' ? 1 : null,
    enableOfflineQueue: role !== 'request',
    // A request-path command whose connection dropped is not sent again after a reconnect: an enqueue is
    // answered 503 instead of possibly being queued twice.
    autoResendUnfulfilledCommands: role !== 'request',
    // A subscriber's ready check (INFO) races its queued SUBSCRIBE: INFO is refused in subscriber mode.
    enableReadyCheck: role !== 'subscriber',
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  };
  const client = openClient(config, options, (times) => Math.min(times * 200, 2_000));
  if (role === 'request' && client instanceof Redis) {
    // Without resending, ioredis forgets (never settles) the commands in flight when a connection drops and
    // the reconnect succeeds at once (a Sentinel failover does exactly that): fail them instead, so the request
    // answers 503 rather than hanging.
    const flushable = client as unknown as { flushQueue(err: Error, options: { offlineQueue: boolean }): void };
    client.on('close', () => flushable.flushQueue(new Error('Connection is closed before the reply (outcome unknown)'), { offlineQueue: false }));
  }
  let reported = false;
  client.on('error', (err: Error) => {
    // One line per outage, not one per retry.
    if (!reported) log.warn({ err: { message: err.message }, role: name }, 'redis connection error');
    reported = true;
  });
  client.on('ready', () => {
    if (reported) {
      reconnects.inc({ role: name });
      log.info({ role: name }, 'redis reconnected');
    }
    reported = false;
  });
  return client;
}

/**
 * Connects once for a short command-line task: no retries, a clear error naming the Redis it could not
 * reach. The caller closes it with {@link closeRedis}.
 */
export async function connectOnce(config: RedisConfig, timeoutMs = 3_000): Promise<RedisClient> {
  const client = openClient(config, { maxRetriesPerRequest: 1, connectTimeout: timeoutMs, lazyConnect: true, connectionName: 'flashduck:cli' }, () => null);
  let lastError: Error | undefined;
  client.on('error', (err: Error) => {
    lastError = err;
  });
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
    await client.ping();
    return client;
  } catch (err) {
    client.disconnect();
    const target = describeRedisTarget(parseRedisTarget(config.redisUrl, config.redisClusterNodes));
    throw new Error(`cannot reach Redis at ${target}: ${(lastError ?? (err as Error)).message}; set FLASHDUCK_REDIS_URL or --redis-url`);
  }
}

/**
 * True for the errors a client gives while its connection is down or moving (a restart, a failover, a
 * cluster resharding): the command may be retried once Redis is back. Not for errors Redis itself answers.
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  return /Stream isn't writeable|Connection is closed|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|READONLY|LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|UNBLOCKED|All sentinels are unreachable|Failed to refresh slots cache|Cluster isn't ready|Too many Cluster redirections/.test(err.message);
}

/**
 * Waits until `replicas` replicas hold every write this client made so far (Redis WAIT), at most
 * `timeoutMs`; returns how many confirmed. On a cluster, WAIT goes to the master that owns `key`, on the
 * same connection that wrote it.
 */
export async function waitForReplicas(client: RedisClient, key: string, replicas: number, timeoutMs: number): Promise<number> {
  if (client instanceof Cluster) {
    const res = await client.pipeline().exists(key).wait(replicas, timeoutMs).exec();
    const [err, acked] = res?.[1] ?? [new Error('WAIT got no reply'), 0];
    if (err) throw err;
    return Number(acked);
  }
  return Number(await client.wait(replicas, timeoutMs));
}

/** Waits until a client is ready (or throws after `timeoutMs`). */
export async function waitForRedis(client: RedisClient, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off('ready', onReady);
    };
    client.on('ready', onReady);
  });
}

/** Closes a client, waiting for pending replies but never longer than a second. */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  await Promise.race([client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000))]);
  client.disconnect();
}

/** A Lua script from `packages/core/lua/<name>.lua`, run by SHA with a fallback to EVAL. */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
    readonly numKeys: number,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  static load(name: string): LuaScript {
    const source = readFileSync(new URL(`../lua/${name}.lua`, import.meta.url), 'utf8');
    const numKeys = Number(/-(\d+)$/.exec(name)?.[1]);
    if (!Number.isInteger(numKeys)) throw new Error(`lua script name "${name}" must end with -<numKeys>`);
    return new LuaScript(name, source, numKeys);
  }

  async run(client: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    if (keys.length !== this.numKeys) throw new Error(`${this.name} takes ${this.numKeys} keys, got ${keys.length}`);
    try {
      return await client.evalsha(this.sha, this.numKeys, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
      return await client.eval(this.source, this.numKeys, ...keys, ...args);
    }
  }
}

/**
 * Checks that Redis will not evict keys: an evicted snapshot chunk, queue key or stream entry is lost
 * data. Warns loudly, or throws when `require` is set. A Redis that hides CONFIG (some managed services)
 * cannot be checked: that is logged once.
 */
export async function checkEvictionPolicy(client: RedisClient, log: Logger, require: boolean): Promise<void> {
  let policy: string | undefined;
  try {
    const reply = (await client.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
    policy = reply[1];
  } catch (err) {
    log.warn({ err: { message: (err as Error).message } }, 'cannot read maxmemory-policy from Redis; make sure it is noeviction');
    return;
  }
  if (policy === undefined || policy === 'noeviction') return;
  const message = `Redis maxmemory-policy is "${policy}": Redis may evict snapshot chunks, queued jobs or writes under memory pressure and lose data; set maxmemory-policy noeviction`;
  if (require) throw new Error(`${message} (refusing to start: FLASHDUCK_REQUIRE_NOEVICTION=true)`);
  log.error({ policy }, message);
}
