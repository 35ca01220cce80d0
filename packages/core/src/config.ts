import os from 'node:os';
import path from 'node:path';
import { ConfigError } from './errors.js';
import { parseNodeList, parseRedisTarget, redactUrl, type RedisNode } from './redis-target.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads typed values from an environment, collecting every problem (each naming its variable)
 * instead of stopping at the first. Call {@link EnvReader.finish} to get the frozen result or a
 * {@link ConfigError} listing them all.
 */
export class EnvReader {
  readonly problems: string[] = [];

  constructor(readonly env: Env) {}

  private raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  optionalString(name: string): string | undefined {
    return this.raw(name);
  }

  int(name: string, fallback: number, bounds: { min?: number; max?: number } = {}): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw)) {
      this.problems.push(`${name}: "${raw}" is not an integer`);
      return fallback;
    }
    const n = Number(raw);
    if (bounds.min !== undefined && n < bounds.min) {
      this.problems.push(`${name}: ${n} is below the minimum ${bounds.min}`);
    } else if (bounds.max !== undefined && n > bounds.max) {
      this.problems.push(`${name}: ${n} is above the maximum ${bounds.max}`);
    }
    return n;
  }

  optionalInt(name: string, bounds: { min?: number; max?: number } = {}): number | undefined {
    return this.raw(name) === undefined ? undefined : this.int(name, 0, bounds);
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    this.problems.push(`${name}: "${raw}" is not a boolean (use true, false, 1 or 0)`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.problems.push(`${name}: "${raw}" is not one of ${allowed.join(', ')}`);
    return fallback;
  }

  problem(name: string, message: string): void {
    this.problems.push(`${name}: ${message}`);
  }

  /** Freezes the value, or throws a ConfigError with every problem found. */
  finish<T extends object>(value: T): Readonly<T> {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
    return Object.freeze(value);
  }
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Settings every component shares. */
export interface CommonConfig {
  readonly redisUrl: string;
  /** Redis Cluster seed nodes; when set, the cluster is used instead of `redisUrl`. */
  readonly redisClusterNodes: readonly RedisNode[] | null;
  /** CA certificate (PEM file) to verify a TLS (`rediss://`) Redis, when it is not signed by a public CA. */
  readonly redisCaFile: string | undefined;
  readonly prefix: string;
  readonly dataDir: string;
  readonly exportDir: string;
  readonly logLevel: LogLevel;
  /** Stable id of this process in heartbeats and metrics (pod name when set). */
  readonly instanceId: string;
  /** How often each instance publishes its heartbeat; it counts as gone after three intervals without one. */
  readonly heartbeatMs: number;
  /** A queue worker that takes no job for this long while jobs wait is replaced (cacher, exporter). */
  readonly queueStallMs: number;
  /** How long SIGTERM may take before the process exits anyway. */
  readonly shutdownMs: number;
  /** Refuse to start when Redis may evict keys (otherwise: a loud warning). */
  readonly requireNoEviction: boolean;
}

function parseNodes(r: EnvReader, name: string): RedisNode[] | null {
  const raw = r.optionalString(name);
  if (!raw) return null;
  try {
    return parseNodeList(raw);
  } catch (err) {
    r.problem(name, (err as Error).message);
    return null;
  }
}

/** Reads the settings every component shares. */
export function readCommonConfig(r: EnvReader): CommonConfig {
  const redisUrl = r.string('FLASHDUCK_REDIS_URL', 'redis://127.0.0.1:6379');
  const prefix = r.string('FLASHDUCK_PREFIX', 'fd');
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) r.problem('FLASHDUCK_PREFIX', `"${prefix}" may only contain letters, digits, "_", "." and "-"`);
  const dataDir = path.resolve(r.string('FLASHDUCK_DATA_DIR', './data'));
  const exportDir = path.resolve(r.string('FLASHDUCK_EXPORT_DIR', './exports'));
  const redisClusterNodes = parseNodes(r, 'FLASHDUCK_REDIS_CLUSTER_NODES');
  try {
    parseRedisTarget(redisUrl, redisClusterNodes);
    if (redisClusterNodes && /^rediss?\+/.test(redisUrl)) {
      r.problem('FLASHDUCK_REDIS_CLUSTER_NODES', 'set either FLASHDUCK_REDIS_CLUSTER_NODES or a redis+cluster:// / redis+sentinel:// URL, not both');
    }
  } catch (err) {
    r.problem('FLASHDUCK_REDIS_URL', `"${redactUrl(redisUrl)}" ${(err as Error).message}`);
  }
  const instanceId =
    r.optionalString('FLASHDUCK_INSTANCE_ID') ?? r.optionalString('POD_NAME') ?? `${os.hostname()}-${process.pid}`;
  return {
    redisUrl,
    redisClusterNodes,
    redisCaFile: r.optionalString('FLASHDUCK_REDIS_CA_FILE'),
    prefix,
    dataDir,
    exportDir,
    logLevel: r.oneOf('FLASHDUCK_LOG_LEVEL', LOG_LEVELS, 'info'),
    instanceId,
    heartbeatMs: r.int('FLASHDUCK_HEARTBEAT_MS', 5_000, { min: 100, max: 60_000 }),
    queueStallMs: r.int('FLASHDUCK_QUEUE_STALL_MS', 15_000, { min: 1_000 }),
    shutdownMs: r.int('FLASHDUCK_SHUTDOWN_MS', 20_000, { min: 100 }),
    requireNoEviction: r.bool('FLASHDUCK_REQUIRE_NOEVICTION', false),
  };
}

export { redactUrl };

/** A copy of a config fit for logging: secrets redacted. */
export function redactConfig(config: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (/token|secret|password/i.test(k)) out[k] = v ? '***' : v;
    else if (typeof v === 'string' && /^rediss?(\+\w+)?:\/\//.test(v)) out[k] = redactUrl(v);
    else out[k] = v;
  }
  return out;
}

/** True when `child` is `parent` or inside it (after resolving both). */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(path.resolve(parent), path.resolve(child));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The environment variables a config loader reads (it is run against an empty, recording environment). */
export function configVariables(load: (env: NodeJS.ProcessEnv) => unknown): string[] {
  const seen = new Set<string>();
  const env = new Proxy<NodeJS.ProcessEnv>({}, {
    get(_target, key) {
      if (typeof key === 'string') seen.add(key);
      return undefined;
    },
  });
  try {
    load(env);
  } catch {
    /* defaults may be invalid on their own (e.g. no data dir); the names are what matters */
  }
  return [...seen].sort();
}
