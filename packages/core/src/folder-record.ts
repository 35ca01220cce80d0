import { IgnoredFiles, decode } from './messages.js';
import type { Keys } from './keys.js';
import { LuaScript, type RedisClient } from './redis.js';

/**
 * Redis is a cache of the folder. The monitor leader records every table's manifest and then marks the
 * record complete; the mark vanishing (Redis restarted empty, a failover to an empty replica, a FLUSHALL, a
 * lost volume) is how every component learns that Redis forgot the folder:
 * - the monitor records every table again from the folder;
 * - query-api replicas keep serving the versions they have until rebuilt ones arrive;
 * - the exporter removes an export only while the record is complete (the folder, not Redis, lost the table).
 *
 * `missing`: no record (a first start, or Redis lost its data); `recording`: a monitor is recording the folder
 * now; `complete`: every table of the folder has its manifest in Redis.
 */
export type FolderRecordState = 'missing' | 'recording' | 'complete';

/** The folder record as Redis holds it. */
export interface FolderRecord {
  readonly state: FolderRecordState;
  /** Id of the recording (changes each time the folder is recorded again). */
  readonly id?: string;
  /** When that recording began (ms). */
  readonly since?: number;
}

const completeScript = LuaScript.load('folder-record-complete-1');

/** Reads the folder record. */
export async function readFolderRecord(redis: RedisClient, keys: Keys): Promise<FolderRecord> {
  const [id, state, since] = await redis.hmget(keys.folderRecord, 'id', 'state', 'since');
  if (!id) return { state: 'missing' };
  return { state: state === 'complete' ? 'complete' : 'recording', id, since: Number(since) };
}

/** Begins a recording of the folder (the monitor leader, before it records every table's manifest). */
export async function beginFolderRecord(redis: RedisClient, keys: Keys, id: string, now: number): Promise<void> {
  await redis.hset(keys.folderRecord, 'id', id, 'state', 'recording', 'since', now);
}

/**
 * Marks the recording `id` complete. False when Redis no longer holds that recording (it lost its data
 * again while the monitor recorded): the caller records again.
 */
export async function completeFolderRecord(redis: RedisClient, keys: Keys, id: string): Promise<boolean> {
  return Number(await completeScript.run(redis, [keys.folderRecord], [id])) === 1;
}

/**
 * True only when the folder itself lost the table: Redis holds a complete record of the folder, the table
 * is not in it, and it has no current snapshot. A table Redis merely forgot is not gone.
 */
export async function isTableGone(redis: RedisClient, keys: Keys, table: string): Promise<boolean> {
  const [record, listed, meta] = await Promise.all([
    readFolderRecord(redis, keys),
    redis.sismember(keys.tables, table),
    redis.hget(keys.tableMeta(table), 'json'),
  ]);
  return record.state === 'complete' && listed === 0 && !meta;
}

/** The files the monitor's last scan found with an extension FlashDuck does not read (null: none recorded). */
export async function readIgnoredFiles(redis: RedisClient, keys: Keys): Promise<IgnoredFiles | null> {
  const raw = await redis.get(keys.ignoredFiles);
  if (!raw) return null;
  const d = decode(IgnoredFiles, raw);
  return d.ok ? d.value : null;
}
