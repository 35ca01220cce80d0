import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { mkdir } from 'node:fs/promises';
import { PartStored, createKeys, encode, registry, retiredMember, storePart } from '@flashduck/core';
import { closeDuckDB, openDuckDB } from '@flashduck/core/duckdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, rows, waitFor, writeAtomic } from './helpers.js';
import { startStack, type Stack } from './stack.js';

interface PartView {
  id: string;
  bytes: number;
  chunks: number;
  members: number;
  excluded?: number;
}

const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values.reduce((n, v) => n + v.value, 0);
const csv = (file: number, n: number) => `file,i,label\n${Array.from({ length: n }, (_, i) => `${file},${i},row-${file}-${i}`).join('\n')}\n`;

async function partKeys(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:{part:*`, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out.sort();
}

describe('parts: a change costs what changed', () => {
  let stack: Stack;
  let redis: Redis;
  const info = async (t: string) => (await fetch(`http://127.0.0.1:${stack.api.port}/v1/tables/${t}`)).json();

  beforeAll(async () => {
    stack = await startStack('parts', { CACHER_MERGE: 'false', CACHER_RETAIN_MS: '0', FLASHDUCK_RETAIN_VERSIONS: '1' }, async (dir) => {
      await mkdir(path.join(dir, 'events'));
      for (let f = 1; f <= 6; f++) await writeAtomic(path.join(dir, 'events', `f${f}.csv`), csv(f, 2_000));
    });
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });

  it('stores one new part for a new file, and a replica fetches only that part', async () => {
    await waitFor('events served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM events'))[0]?.n === 12_000);
    const before = (await info('events')).snapshot.parts as PartView[];
    expect(before).toHaveLength(6);
    const fetched = await metric('flashduck_query_part_bytes_fetched_total');
    const written = await metric('flashduck_cacher_part_bytes_written_total');

    await writeAtomic(path.join(stack.dataDir, 'events', 'f7.csv'), csv(7, 200));
    await waitFor('append served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM events'))[0]?.n === 12_200);
    const after = (await info('events')).snapshot.parts as PartView[];
    const added = after.filter((p) => !before.some((b) => b.id === p.id));
    expect(added).toHaveLength(1);
    expect(after.filter((p) => before.some((b) => b.id === p.id))).toHaveLength(6);
    expect((await metric('flashduck_query_part_bytes_fetched_total')) - fetched).toBe(added[0]!.bytes);
    expect((await metric('flashduck_cacher_part_bytes_written_total')) - written).toBe(added[0]!.bytes);
    expect(await rows(stack.api.port, 'SELECT count(*) AS n FROM events WHERE file = 7')).toEqual([{ n: 200 }]);
  });

  it('a replica fetches a part as soon as the cacher announces it, before any version lists it, and only once', async () => {
    // A part as a build stores it while its other files are still being read.
    const file = path.join(stack.dataDir, '..', 'announced.duckdb');
    const db = await openDuckDB();
    await db.conn.run(`ATTACH '${file}' AS out`);
    await db.conn.run("CREATE TABLE out.part AS SELECT 99 AS file, range AS i, 'announced' AS label FROM range(500)");
    await db.conn.run('DETACH out');
    closeDuckDB(db);
    const keys = createKeys(stack.prefix);
    const stored = await storePart(redis, keys, 'events', file, 1 << 20);
    await rm(file, { force: true });
    try {
      const part = { id: stored.id, format: 'duckdb' as const, chunks: stored.chunks, bytes: stored.bytes, rows: 500, members: 1, columns: [{ name: 'file', type: 'INTEGER' }, { name: 'i', type: 'BIGINT' }, { name: 'label', type: 'VARCHAR' }] };
      const prefetched = await metric('flashduck_query_parts_prefetched_total');
      const fetched = await metric('flashduck_query_part_bytes_fetched_total');
      await redis.publish(keys.partsStored, encode(PartStored, { v: 1, table: 'events', part, at: Date.now() }));
      await waitFor('part prefetched', async () => (await metric('flashduck_query_parts_prefetched_total')) === prefetched + 1);
      expect((await metric('flashduck_query_part_bytes_fetched_total')) - fetched).toBe(stored.bytes);
      // Announced again (a cacher storing the same bytes), then a new version: the part is not fetched again,
      // and the new file's part is fetched once, whether announced or listed first.
      await redis.publish(keys.partsStored, encode(PartStored, { v: 1, table: 'events', part, at: Date.now() }));
      const before = (await info('events')).snapshot.parts as PartView[];
      await writeAtomic(path.join(stack.dataDir, 'events', 'f8.csv'), csv(8, 1));
      await waitFor('next version served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM events WHERE file = 8'))[0]?.n === 1);
      const added = ((await info('events')).snapshot.parts as PartView[]).filter((p) => !before.some((b) => b.id === p.id));
      expect(added).toHaveLength(1);
      expect((await metric('flashduck_query_part_bytes_fetched_total')) - fetched).toBe(stored.bytes + added[0]!.bytes);
    } finally {
      await redis.zadd(keys.tableRetired('events'), Date.now(), retiredMember(stored)); // never listed: collected
    }
  });

  it('collects the part of a replaced file once no version lists it; Redis holds each part once', async () => {
    await writeAtomic(path.join(stack.dataDir, 'events', 'f1.csv'), csv(1, 10));
    await waitFor('replace served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM events WHERE file = 1'))[0]?.n === 10);
    const parts = (await info('events')).snapshot.parts as PartView[];
    const expected = parts.flatMap((p) => Array.from({ length: p.chunks }, (_, i) => `${stack.prefix}:{part:${p.id}}:${i}`)).sort();
    // The retired part goes at the next collection (the grace period is 0 here).
    await waitFor('old part collected', async () => JSON.stringify(await partKeys(redis, stack.prefix)) === JSON.stringify(expected));
  });

  it('a deleted file leaves the table and its part is collected', async () => {
    const before = ((await info('events')).snapshot.parts as PartView[]).length;
    await rm(path.join(stack.dataDir, 'events', 'f2.csv'));
    await waitFor('delete served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM events WHERE file = 2'))[0]?.n === 0);
    const parts = (await info('events')).snapshot.parts as PartView[];
    expect(parts).toHaveLength(before - 1);
    await waitFor('part collected', async () => (await partKeys(redis, stack.prefix)).length === parts.reduce((n, p) => n + p.chunks, 0));
  });

  it('keeps a small table small: an 8-row file is a part of a few KB', async () => {
    await writeAtomic(path.join(stack.dataDir, 'tiny.csv'), `id,name\n${Array.from({ length: 8 }, (_, i) => `${i},n${i}`).join('\n')}\n`);
    await waitFor('tiny served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM tiny'))[0]?.n === 8);
    const tiny = await info('tiny');
    expect(tiny.snapshot.parts).toHaveLength(1);
    expect(tiny.snapshot.bytes).toBeLessThan(16 * 1024);
  });
});

describe('background merges', () => {
  let stack: Stack;
  const info = async (t: string) => (await fetch(`http://127.0.0.1:${stack.api.port}/v1/tables/${t}`)).json();
  const perFile = () => rows(stack.api.port, 'SELECT file, count(*) AS n FROM logs GROUP BY file ORDER BY file');

  beforeAll(async () => {
    stack = await startStack('merges', { CACHER_MERGE_MAX_PARTS: '3', CACHER_RETAIN_MS: '0', FLASHDUCK_RETAIN_VERSIONS: '1' }, async (dir) => {
      await mkdir(path.join(dir, 'logs'));
      for (let f = 1; f <= 8; f++) await writeAtomic(path.join(dir, 'logs', `f${f}.csv`), csv(f, 100 * f));
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('merges small parts until the table has at most the bound, with the same rows', async () => {
    const merged = await waitFor('parts merged', async () => {
      const m = await info('logs');
      return m.snapshot?.parts.length <= 3 && m.rows === 3_600 ? m : undefined;
    });
    expect(merged.snapshot.cause).toBe('merge');
    expect(merged.snapshot.parts.some((p: PartView) => p.members > 1)).toBe(true);
    expect(await perFile()).toEqual(Array.from({ length: 8 }, (_, i) => ({ file: i + 1, n: 100 * (i + 1) })));
    expect(merged.files.map((f: { path: string; rows: number }) => [f.path, f.rows])).toEqual(Array.from({ length: 8 }, (_, i) => [`logs/f${i + 1}.csv`, 100 * (i + 1)]));
  });

  it('a file changed or deleted inside a merged part is excluded from it, never served twice', async () => {
    await writeAtomic(path.join(stack.dataDir, 'logs', 'f3.csv'), csv(3, 7));
    await rm(path.join(stack.dataDir, 'logs', 'f5.csv'));
    const expected = [1, 2, 3, 4, 6, 7, 8].map((f) => ({ file: f, n: f === 3 ? 7 : 100 * f }));
    await waitFor('changes served', async () => JSON.stringify(await perFile()) === JSON.stringify(expected));
    // Merges go on (excluded members are dropped when their part is rewritten); the answer never changes.
    await waitFor('bounded again', async () => (await info('logs')).snapshot.parts.length <= 3);
    expect(await perFile()).toEqual(expected);
    expect((await rows(stack.api.port, 'SELECT count(*) AS n FROM logs'))[0]).toEqual({ n: expected.reduce((n, e) => n + e.n, 0) });
  });
});
