import { readFolderRecord, type FolderRecord } from './folder-record.js';
import type { Keys } from './keys.js';
import { TableMeta, decode } from './messages.js';
import type { RedisClient } from './redis.js';

/** Every table's current snapshot metadata, as Redis holds it now. */
export interface TableMetas {
  readonly metas: Map<string, TableMeta>;
  /** Tables whose record could not be decoded. */
  readonly unreadable: { table: string; error: string }[];
  /** Every table Redis lists (some may have no snapshot yet). */
  readonly listed: ReadonlySet<string>;
  /** The folder record when the tables were read: only a complete record can say a table is gone. */
  readonly record: FolderRecord;
}

/** Reads every table's current snapshot metadata, with the table list and the folder record. */
export async function readTableMetas(redis: RedisClient, keys: Keys): Promise<TableMetas> {
  // The record first: if it is complete now, the table list read after it holds every table of the folder.
  const record = await readFolderRecord(redis, keys);
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
  return { metas, unreadable, listed: new Set(names), record };
}
