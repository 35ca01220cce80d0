import {
  Fragment,
  TableMeta,
  decode,
  deletePart,
  parseRetiredMember,
  type Keys,
  type Logger,
  type RedisClient,
} from '@flashduck/core';

/** Reads a table's fragment index (path → Fragment). Undecodable entries are dropped (the file is read again). */
export function parseFragments(raw: Record<string, string>, log: Logger): Map<string, Fragment> {
  const out = new Map<string, Fragment>();
  for (const [p, json] of Object.entries(raw)) {
    const d = decode(Fragment, json);
    if (d.ok) out.set(p, d.value);
    else log.warn({ path: p, error: d.error }, 'fragment record unreadable; the file will be read again');
  }
  return out;
}

/**
 * Deletes parts that left the current version longer than `retainMs` ago (the grace period lets a replica that
 * is still fetching an older version finish it). A part the current version lists again is only un-retired.
 * The caller holds the table's build lease: no build can claim a part while it is being deleted.
 */
export async function collectRetired(redis: RedisClient, keys: Keys, table: string, retainMs: number, now: number): Promise<number> {
  const members = await redis.zrangebyscore(keys.tableRetired(table), '-inf', now - retainMs, 'LIMIT', 0, 500);
  if (members.length === 0) return 0;
  const listed = new Set(((await redis.hget(keys.tableMeta(table), 'parts')) ?? '').split(' '));
  let deleted = 0;
  for (const member of members) {
    const part = parseRetiredMember(member);
    // Claimed again meanwhile (a merge storing the same bytes): its new score keeps it.
    const score = await redis.zscore(keys.tableRetired(table), member);
    if (score === null || Number(score) > now - retainMs) continue;
    if (part && !listed.has(member)) {
      await deletePart(redis, keys, part);
      deleted += 1;
    }
    await redis.zrem(keys.tableRetired(table), member);
  }
  return deleted;
}

/** The parts a table's current version lists (empty when it has none or it is unreadable). */
export async function currentParts(redis: RedisClient, keys: Keys, table: string): Promise<TableMeta['parts']> {
  const raw = await redis.hget(keys.tableMeta(table), 'json');
  const d = raw ? decode(TableMeta, raw) : null;
  return d?.ok ? d.value.parts : [];
}
