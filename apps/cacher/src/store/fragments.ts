import {
  Fragment,
  decode,
  encode,
  parseRetiredMember,
  readBlobToFile,
  deleteBlob,
  type Keys,
  type Logger,
  type RedisClient,
} from '@flashduck/core';

/** Reads a table's fragment index (path → Fragment). Undecodable entries are dropped (the file is re-read). */
export function parseFragments(raw: Record<string, string>, log: Logger): Map<string, Fragment> {
  const out = new Map<string, Fragment>();
  for (const [p, json] of Object.entries(raw)) {
    const d = decode(Fragment, json);
    if (d.ok) out.set(p, d.value);
    else log.warn({ path: p, error: d.error }, 'fragment record unreadable; the file will be read again');
  }
  return out;
}

/** Fetches a fragment's Parquet bytes into a local file. */
export async function fetchFragment(redis: RedisClient, keys: Keys, table: string, fragment: Fragment, file: string): Promise<void> {
  await readBlobToFile(redis, keys, { table, id: fragment.blob, chunks: fragment.chunks }, file);
}

export function encodeFragment(fragment: Fragment): string {
  return encode(Fragment, fragment);
}

/**
 * Deletes blobs retired longer than `retainMs` ago (old snapshot versions and replaced fragments).
 * The grace period lets a query-api replica that is still downloading a version finish it.
 */
export async function collectRetired(redis: RedisClient, keys: Keys, table: string, retainMs: number, now: number): Promise<number> {
  const members = await redis.zrangebyscore(keys.tableRetired(table), '-inf', now - retainMs, 'LIMIT', 0, 500);
  for (const member of members) {
    const ref = parseRetiredMember(table, member);
    if (ref) await deleteBlob(redis, keys, ref);
    await redis.zrem(keys.tableRetired(table), member);
  }
  return members.length;
}
