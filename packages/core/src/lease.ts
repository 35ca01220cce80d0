import { randomUUID } from 'node:crypto';
import { LuaScript, isRedisUnavailable, type RedisClient } from './redis.js';

const acquireScript = LuaScript.load('lease-acquire-2');
const releaseScript = LuaScript.load('lease-release-1');
const renewScript = LuaScript.load('lease-renew-1');
/** Retries of a release while Redis is unavailable (200 ms doubling: about 6 s in all). */
const RELEASE_RETRIES = 5;

/** Where a lease lives: its owner key and its fencing counter (same hash slot). */
export interface LeaseKeys {
  readonly owner: string;
  readonly epoch: string;
}

/** A lease kept renewed by {@link Lease.keepRenewed}. */
export interface RenewedLease {
  /** A renewal found the lease gone; it is not taken again. */
  readonly lost: boolean;
  stop(): void;
}

/**
 * A lease held by one token at a time, with a fencing epoch that grows on every new holder.
 * Writers that must not act on a lost lease pass the epoch (or token) to a script that checks it.
 */
export class Lease {
  readonly token: string;
  private epochValue = 0;

  constructor(
    private readonly redis: RedisClient,
    readonly keys: LeaseKeys,
    readonly ttlMs: number,
    owner: string,
  ) {
    // The random part makes two holders in one process (two jobs, two tests) distinct.
    this.token = `${owner}:${randomUUID().slice(0, 8)}`;
  }

  /** The epoch of the last successful acquire/renew, 0 when not held. */
  get epoch(): number {
    return this.epochValue;
  }

  /** Acquires or renews; returns true when held afterwards. */
  async tryAcquire(): Promise<boolean> {
    const epoch = Number(await acquireScript.run(this.redis, [this.keys.owner, this.keys.epoch], [this.token, this.ttlMs]));
    this.epochValue = epoch;
    return epoch > 0;
  }

  /**
   * Renews the lease if the caller still holds it; never acquires it again. False when it is lost (it expired, or
   * Redis lost its data): the holder must not act on what it read under it.
   */
  async renew(): Promise<boolean> {
    const epoch = Number(await renewScript.run(this.redis, [this.keys.owner], [this.token, this.ttlMs]));
    if (epoch === 0) this.epochValue = 0;
    return epoch > 0;
  }

  /**
   * Renews the held lease every third of its TTL until `stop()`; never takes it again. `lost` turns true (and
   * `onLost` is called once) when a renewal finds it gone: it expired during a stall, another holder has it, or
   * Redis lost its data. The holder's fenced steps must then refuse; how long the work takes no longer matters
   * while the lease is kept.
   */
  keepRenewed(onLost: () => void = () => undefined, onError: (err: unknown) => void = () => undefined): RenewedLease {
    let lost = false;
    const timer = setInterval(() => {
      if (lost) return;
      this.renew()
        .then((held) => {
          if (held || lost) return;
          lost = true;
          onLost();
        })
        .catch(onError);
    }, Math.max(200, Math.floor(this.ttlMs / 3)));
    return {
      get lost() {
        return lost;
      },
      stop: () => clearInterval(timer),
    };
  }

  /**
   * Releases if still held. While Redis is briefly unavailable (a failover, a restart) it tries again for a
   * few seconds: a release that is lost leaves the lease blocking every other holder until its TTL.
   */
  async release(): Promise<void> {
    this.epochValue = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await releaseScript.run(this.redis, [this.keys.owner], [this.token]);
        return;
      } catch (err) {
        if (!isRedisUnavailable(err) || attempt >= RELEASE_RETRIES) throw err;
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  /** Who holds the lease now ("<token>|<epoch>"), or null. */
  async holder(): Promise<string | null> {
    return await this.redis.get(this.keys.owner);
  }
}
