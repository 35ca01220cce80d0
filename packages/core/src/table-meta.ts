import type { Keys } from './keys.js';
import { TableMeta, decode } from './messages.js';
import type { RedisClient } from './redis.js';

/** Every table's current snapshot metadata, and the tables whose record could not be decoded. */
export async function readTableMetas(
  redis: RedisClient,
  keys: Keys,
): Promise<{ metas: Map<string, TableMeta>; unreadable: { table: string; error: string }[] }> {
  const names = (await redis.smembers(keys.tables)).sort();
  // One call per table: on Redis Cluster each table's key lives in its own slot.
  const raws = await Promise.all(names.map((n) => redis.hget(keys.tableMeta(n), 'json')));
  const metas = new Map<string, TableMeta>();
  const unreadable: { table: string; error: string }[] = [];
  names.forEach((table, i) => {
    const raw = raws[i];
    if (!raw) return;
    const d = decode(TableMeta, raw);
    if (d.ok) metas.set(table, d.value);
    else unreadable.push({ table, error: d.error });
  });
  return { metas, unreadable };
}
