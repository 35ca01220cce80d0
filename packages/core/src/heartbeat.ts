import os from 'node:os';
import type { Keys } from './keys.js';
import type { Logger } from './logger.js';
import { Heartbeat, decode, encode } from './messages.js';
import { gauge } from './metrics.js';
import type { RedisClient } from './redis.js';
import { within } from './within.js';

const instanceInfo = gauge('flashduck_instance_info', 'One series per component instance in this process: its stable id (FLASHDUCK_INSTANCE_ID, else POD_NAME, else host-pid)', ['component', 'instance', 'host']);

export interface HeartbeatOptions {
  readonly component: string;
  readonly instance: string;
  readonly intervalMs?: number;
  /** Figures to publish with every beat (lag, queue depth, role). */
  readonly info?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
}

/**
 * Publishes a component's heartbeat every `intervalMs` (TTL three intervals) until stopped.
 * `touch()` records a completed loop iteration, shown as `lastLoopAt`.
 */
export class HeartbeatPublisher {
  private timer: NodeJS.Timeout | undefined;
  private lastLoopAt = Date.now();
  private readonly startedAt = Date.now();
  private readonly intervalMs: number;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly log: Logger,
    private readonly options: HeartbeatOptions,
  ) {
    this.intervalMs = options.intervalMs ?? 5_000;
    instanceInfo.set({ component: options.component, instance: options.instance, host: os.hostname() }, 1);
  }

  get field(): string {
    return `${this.options.component}:${this.options.instance}`;
  }

  touch(): void {
    this.lastLoopAt = Date.now();
  }

  async beat(): Promise<void> {
    // Bounded: figures that cannot be read now (a queue while Redis fails over) must not stop the beat.
    const figures = this.options.info?.() ?? {};
    const info = (await within(Promise.resolve(figures), Math.min(2_000, this.intervalMs))) ?? { unavailable: true };
    const hb: Heartbeat = {
      v: 1,
      component: this.options.component,
      instance: this.options.instance,
      host: os.hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      lastLoopAt: this.lastLoopAt,
      beatAt: Date.now(),
      ttlMs: this.intervalMs * 3,
      info,
    };
    await this.redis.hset(this.keys.heartbeats, this.field, encode(Heartbeat, hb));
  }

  start(): void {
    const tick = () => {
      this.beat()
        .catch((err: unknown) => this.log.warn({ err }, 'heartbeat failed'))
        .finally(() => {
          if (!this.stopping) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    tick();
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearTimeout(this.timer);
      await this.redis.hdel(this.keys.heartbeats, this.field).catch(() => undefined);
    })();
    return this.stopping;
  }
}

/** Heartbeats of live instances; expired ones are removed from Redis as a side effect. */
export async function readHeartbeats(redis: RedisClient, keys: Keys, now = Date.now()): Promise<Heartbeat[]> {
  const all = await redis.hgetall(keys.heartbeats);
  const alive: Heartbeat[] = [];
  const dead: string[] = [];
  for (const [field, raw] of Object.entries(all)) {
    const d = decode(Heartbeat, raw);
    // A beat older than its TTL belongs to an instance that died without saying so.
    if (!d.ok || now - d.value.beatAt > d.value.ttlMs) dead.push(field);
    else alive.push(d.value);
  }
  if (dead.length) await redis.hdel(keys.heartbeats, ...dead);
  return alive.sort((a, b) => a.component.localeCompare(b.component) || a.instance.localeCompare(b.instance));
}
