import {
  Fragment,
  TableMeta,
  decode,
  deletePart,
  parseRetiredMember,
  retiredMember,
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

/** How many versions of a table stay queryable: the last `versions`, and every one younger than `ms`. */
export interface Retention {
  readonly versions: number;
  readonly ms: number;
}

/**
 * Drops versions past the retention from the table's history; their parts that no retained version lists are
 * retired (collected after the grace period). The current version is always kept. Returns the retained versions.
 */
export async function pruneVersions(redis: RedisClient, keys: Keys, table: string, retention: Retention, now: number): Promise<TableMeta[]> {
  const raw = await redis.hgetall(keys.tableVersions(table));
  const metas: TableMeta[] = [];
  for (const json of Object.values(raw)) {
    const d = decode(TableMeta, json);
    if (d.ok) metas.push(d.value);
  }
  metas.sort((a, b) => b.version - a.version);
  const current = Number((await redis.hget(keys.tableMeta(table), 'version')) ?? -1);
  const keep = metas.filter((m, i) => i < retention.versions || m.updatedAt >= now - retention.ms || m.version === current);
  const drop = metas.filter((m) => !keep.includes(m));
  const unreadable = Object.keys(raw).filter((v) => !metas.some((m) => String(m.version) === v));
  if (drop.length === 0 && unreadable.length === 0) return keep;
  const listed = new Set(keep.flatMap((m) => m.parts.map(retiredMember)));
  const retire = new Set(drop.flatMap((m) => m.parts.map(retiredMember)).filter((p) => !listed.has(p)));
  await redis.hdel(keys.tableVersions(table), ...drop.map((m) => String(m.version)), ...unreadable);
  if (retire.size) await redis.zadd(keys.tableRetired(table), ...[...retire].flatMap((m) => [now, m]));
  return keep;
}

/**
 * Deletes parts that left every retained version longer than `retainMs` ago (the grace period lets a replica that
 * is still fetching an older version finish it). A part a retained version lists is only un-retired (pruning
 * retires it again when its last version goes). The caller holds the table's build lease: no build can claim a
 * part while it is being deleted.
 */
export async function collectRetired(redis: RedisClient, keys: Keys, table: string, retainMs: number, now: number, retention: Retention): Promise<number> {
  const retained = await pruneVersions(redis, keys, table, retention, now);
  const members = await redis.zrangebyscore(keys.tableRetired(table), '-inf', now - retainMs, 'LIMIT', 0, 500);
  if (members.length === 0) return 0;
  const listed = new Set(((await redis.hget(keys.tableMeta(table), 'parts')) ?? '').split(' '));
  for (const m of retained) for (const p of m.parts) listed.add(retiredMember(p));
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
