import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { WRITE_GROUP, createKeys } from '@flashduck/core';
import { enqueueWrite } from '@flashduck/query-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, TEST_REDIS_URL, deletePrefix, removeDir, rowsOnDisk, tempDir, uniquePrefix, waitFor } from '../helpers.js';

type Row = { id: number; val?: string; n?: number | null };
type Op = { op: 'upsert' | 'delete'; rows: Row[] };

/** The table the operations must produce, applied in stream order with FlashDuck's upsert rules. */
function reference(initial: Row[], ops: Op[]): Map<number, Row> {
  const table = new Map(initial.map((r) => [r.id, { ...r }]));
  for (const { op, rows } of ops) {
    for (const r of rows) {
      if (op === 'delete') table.delete(r.id);
      else table.set(r.id, { ...(table.get(r.id) ?? { id: r.id, val: undefined, n: null }), ...r });
    }
  }
  return table;
}

describe('write-applier crash safety', () => {
  const prefix = uniquePrefix('crash');
  const keys = createKeys(prefix);
  let dataDir: string;
  let work: string;
  let redis: Redis;
  let env: Record<string, string>;
  const procs: AppProcess[] = [];

  beforeAll(async () => {
    dataDir = await tempDir('crash-data');
    work = await tempDir('crash-work');
    redis = new Redis(TEST_REDIS_URL);
    env = {
      FLASHDUCK_REDIS_URL: TEST_REDIS_URL,
      FLASHDUCK_PREFIX: prefix,
      FLASHDUCK_DATA_DIR: dataDir,
      WRITER_WORK_DIR: path.join(work, 'writer'),
      WRITER_POLL_MS: '50',
      WRITER_BATCH_SIZE: '25',
      WRITER_CLAIM_IDLE_MS: '300',
      WRITER_LEASE_MS: '600',
      WRITER_MAX_DELIVERIES: '1000',
    };
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    redis?.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
    await removeDir(work);
  });

  it('applies 5,000 mixed operations exactly as a reference despite repeated SIGKILLs of the applier', async () => {
    await mkdir(path.join(dataDir, 'crash'));
    const initial: Row[] = Array.from({ length: 200 }, (_, i) => ({ id: i, val: `base-${i}`, n: i }));
    await writeFile(path.join(dataDir, 'crash', 'base.csv'), `id,val,n\n${initial.map((r) => `${r.id},${r.val},${r.n}`).join('\n')}\n`);

    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ops: Op[] = [];
    for (let e = 0; e < 1000; e++) {
      const op = rand() < 0.3 ? 'delete' : 'upsert';
      const rows: Row[] = Array.from({ length: 5 }, (_, r) => {
        const id = Math.floor(rand() * 300);
        if (op === 'delete') return { id };
        return rand() < 0.5 ? { id, val: `e${e}-${r}` } : { id, val: `e${e}-${r}`, n: e * 10 + r };
      });
      ops.push({ op, rows });
    }

    await redis.sadd(keys.writeTables, 'crash');
    let applier = AppProcess.start('write-applier', env);
    procs.push(applier);
    let lastId = '';
    let kills = 0;
    const killer = (async () => {
      while (kills < 12) {
        await new Promise((r) => setTimeout(r, 150 + Math.floor(rand() * 250)));
        await applier.kill('SIGKILL');
        kills += 1;
        applier = AppProcess.start('write-applier', env);
        procs.push(applier);
      }
    })();
    for (const [i, o] of ops.entries()) {
      lastId = (await enqueueWrite(redis, keys, 'crash', o.op, { key: ['id'], rows: o.rows })).writeId.slice('crash.'.length);
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 40));
    }
    await killer;
    expect(kills).toBeGreaterThanOrEqual(10);

    await waitFor(
      'every write applied and acknowledged',
      async () => {
        const applied = await redis.get(keys.tableWritesApplied('crash'));
        const pending = (await redis.xpending(keys.tableWrites('crash'), WRITE_GROUP)) as [number];
        return applied === lastId && Number(pending[0]) === 0;
      },
      120_000,
      200,
    );

    const want = [...reference(initial, ops).values()].sort((a, b) => a.id - b.id).map((r) => ({ id: r.id, val: r.val ?? null, n: r.n ?? null }));
    const got = (await rowsOnDisk(path.join(dataDir, 'crash'))).map((r) => ({ id: Number(r.id), val: r.val ?? null, n: r.n === null || r.n === undefined ? null : Number(r.n) }));
    expect(got).toEqual(want);
    const leftovers = (await readdir(path.join(dataDir, 'crash'))).filter((f) => f.includes('.fd-tmp-'));
    expect(leftovers).toEqual([]);
    expect(await redis.xlen(keys.tableWritesDead('crash'))).toBe(0);
  }, 180_000);
});
