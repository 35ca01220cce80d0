import { AppError, TableMeta, decode, type Keys, type RedisClient } from '@flashduck/core';

/** The retained versions of a table, newest first (an unreadable entry is skipped). */
export async function retainedVersions(redis: RedisClient, keys: Keys, table: string): Promise<TableMeta[]> {
  const raw = await redis.hgetall(keys.tableVersions(table));
  const out: TableMeta[] = [];
  for (const json of Object.values(raw)) {
    const d = decode(TableMeta, json);
    if (d.ok) out.push(d.value);
  }
  return out.sort((a, b) => b.version - a.version);
}

/** The public shape of one retained version. */
export function versionView(m: TableMeta) {
  return {
    version: m.version,
    createdAt: new Date(m.updatedAt).toISOString(),
    rows: m.rows,
    files: m.files.length,
    bytes: m.bytes,
    parts: m.parts.length,
    cause: m.cause ?? 'build',
    sourceGeneration: m.sourceGen,
  };
}

const oldest = (versions: readonly TableMeta[]) => versions[versions.length - 1];
const describeOldest = (versions: readonly TableMeta[]) => {
  const o = oldest(versions);
  return o ? `the oldest retained is v${o.version} of ${new Date(o.updatedAt).toISOString()}` : 'it has no retained version';
};

/** 404 when a table has no retained versions at all. */
function requireVersions(table: string, versions: readonly TableMeta[]): void {
  if (versions.length === 0) throw new AppError('not_found', `table "${table}" has no retained versions (unknown table, or Redis lost its history)`);
}

/** One retained version of a table: 404 when the table has none, 410 when that version is not (or no longer) retained. */
export function pickVersion(table: string, versions: readonly TableMeta[], version: number): TableMeta {
  requireVersions(table, versions);
  const m = versions.find((v) => v.version === version);
  if (!m) throw new AppError('gone', `version ${version} of table "${table}" is not retained (FLASHDUCK_RETAIN_VERSIONS, FLASHDUCK_RETAIN_MS); ${describeOldest(versions)}`);
  return m;
}

/** The version of a table that was current at `at` (ms): the newest published at or before it. */
export function versionAt(table: string, versions: readonly TableMeta[], at: number): TableMeta {
  requireVersions(table, versions);
  const m = versions.find((v) => v.updatedAt <= at);
  if (!m) throw new AppError('gone', `table "${table}" has no retained version at ${new Date(at).toISOString()}; ${describeOldest(versions)}`);
  return m;
}
