import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/** A table's last written export. */
export interface ExportWritten {
  readonly version: number;
  readonly rows: number;
  readonly bytes: number;
  readonly at: number;
  readonly ms: number;
}

/** Why the latest attempt to export a table failed; kept until an export of it is written. */
export interface ExportFailure {
  readonly version: number;
  readonly message: string;
  readonly at: number;
}

export interface ExportState {
  readonly written: ExportWritten | null;
  readonly failing: ExportFailure | null;
}

const FAILURE_FIELDS = ['failedVersion', 'failedAt', 'failure'] as const;

/** Records a written export (version, rows, bytes, when, how long, where) and clears a failure recorded before. */
export async function recordExportWritten(redis: RedisClient, keys: Keys, table: string, written: ExportWritten & { path: string }): Promise<void> {
  const key = keys.tableExported(table);
  await redis
    .multi()
    .hset(key, { version: String(written.version), rows: String(written.rows), bytes: String(written.bytes), at: String(written.at), ms: String(written.ms), path: written.path })
    .hdel(key, ...FAILURE_FIELDS)
    .exec();
}

/** Records why exporting `version` of a table failed: status, `flashduck status` and the console show it. */
export async function recordExportFailure(redis: RedisClient, keys: Keys, table: string, version: number, message: string): Promise<void> {
  await redis.hset(keys.tableExported(table), { failedVersion: String(version), failedAt: String(Date.now()), failure: message.slice(0, 1_000) });
}

/** The version of a table's last written export (0: none). */
export async function exportedVersionOf(redis: RedisClient, keys: Keys, table: string): Promise<number> {
  return Number((await redis.hget(keys.tableExported(table), 'version')) ?? 0);
}

/** A table's last written export and its current failure, if any. */
export async function readExportState(redis: RedisClient, keys: Keys, table: string): Promise<ExportState> {
  const h = await redis.hgetall(keys.tableExported(table));
  return {
    written: h.version ? { version: Number(h.version), rows: Number(h.rows), bytes: Number(h.bytes), at: Number(h.at), ms: Number(h.ms) } : null,
    failing: h.failure ? { version: Number(h.failedVersion), message: h.failure, at: Number(h.failedAt) } : null,
  };
}
