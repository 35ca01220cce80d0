import { WRITE_GROUP, type Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/** The state of one table's writes stream. */
export interface WriteStreamInfo {
  readonly table: string;
  /** Entries in the stream (applied entries are trimmed away over time). */
  readonly length: number;
  /** Delivered to an applier, not yet applied and acknowledged. */
  readonly pending: number;
  /** Not yet delivered to any applier (null when Redis cannot tell). */
  readonly lag: number | null;
  readonly deadLetters: number;
  /** Last stream id applied to the files. */
  readonly applied: string | null;
}

/** Every writes stream with its length, pending count, consumer lag and dead letters. */
export async function readWriteStreams(redis: RedisClient, keys: Keys): Promise<WriteStreamInfo[]> {
  const tables = (await redis.smembers(keys.writeTables)).sort();
  return await Promise.all(
    tables.map(async (table) => {
      const stream = keys.tableWrites(table);
      const [length, dead, applied] = await Promise.all([redis.xlen(stream), redis.xlen(keys.tableWritesDead(table)), redis.get(keys.tableWritesApplied(table))]);
      let pending = 0;
      let lag: number | null = length;
      try {
        const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
        for (const g of groups) {
          const info: Record<string, unknown> = {};
          for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1];
          if (info.name !== WRITE_GROUP) continue;
          pending = Number(info.pending ?? 0);
          lag = info.lag === null || info.lag === undefined ? null : Number(info.lag);
        }
      } catch {
        /* no stream or no group yet: nothing delivered */
      }
      return { table, length, pending, lag, deadLetters: dead, applied };
    }),
  );
}
