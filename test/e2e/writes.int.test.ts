import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as A from 'apache-arrow';
import { Redis } from 'ioredis';
import { createKeys } from '@flashduck/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, TEST_REDIS_URL, deletePrefix, freePort, post, query, removeDir, rows, rowsOnDisk, tempDir, uniquePrefix, waitFor, flashduckEnv } from '../helpers.js';

describe('writes end to end (separate processes)', () => {
  const prefix = uniquePrefix('writes');
  let dataDir: string;
  let work: string;
  let port: number;
  let env: Record<string, string>;
  const procs: AppProcess[] = [];
  const status = async (writeId: string) => (await (await fetch(`http://127.0.0.1:${port}/v1/writes/${writeId}`)).json()) as { status: string; error?: string; version?: number };

  beforeAll(async () => {
    dataDir = await tempDir('writes-data');
    work = await tempDir('writes-work');
    port = await freePort();
    env = {
      ...flashduckEnv(prefix, dataDir, work),
      MONITOR_POLL_MS: '200',
      MONITOR_SETTLE_MS: '100',
      QUERY_API_PORT: String(port),
      QUERY_API_REFRESH_MS: '300',
      QUERY_TIMEOUT_MS: '20000',
      WRITER_POLL_MS: '100',
    };
    for (const app of ['monitor', 'cacher', 'query-api', 'write-applier']) procs.push(AppProcess.start(app, env));
    await Promise.all(procs.map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|query-api listening|write-applier started)"/)));
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
    await removeDir(work);
  });

  it('upserts 1,000 rows, updates 100, deletes 50: queries and files agree with the expected table', async () => {
    const expected = new Map<number, { id: number; name: string; balance: number }>();
    let last = '';
    for (let start = 0; start < 1000; start += 250) {
      const batch = Array.from({ length: 250 }, (_, i) => ({ id: start + i, name: `acct-${start + i}`, balance: (start + i) * 10 }));
      for (const r of batch) expected.set(r.id, r);
      const r = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: batch });
      expect(r.status).toBe(202);
      last = r.body.writeId;
    }
    await waitFor('accounts created', async () => (await status(last)).status === 'visible', 30_000);
    const updates = Array.from({ length: 100 }, (_, i) => ({ id: i * 3, balance: -(i + 1) }));
    for (const u of updates) expected.set(u.id, { ...expected.get(u.id)!, balance: u.balance });
    expect((await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: updates })).status).toBe(202);
    const deletes = Array.from({ length: 50 }, (_, i) => ({ id: 999 - i * 7 }));
    for (const d of deletes) expected.delete(d.id);
    const del = await post(port, '/v1/tables/accounts/delete', { key: ['id'], rows: deletes });
    expect(del.status).toBe(202);

    // Read-your-writes: the query waits until the served snapshot contains the delete.
    const fresh = await query(port, 'SELECT count(*) AS n, sum(balance) AS total FROM accounts', { after: del.body.writeId });
    expect(fresh.status).toBe(200);
    const want = [...expected.values()].sort((a, b) => a.id - b.id);
    expect(fresh.body.rows).toEqual([{ n: 950, total: want.reduce((s, r) => s + r.balance, 0) }]);
    expect(await rows(port, 'SELECT id, name, balance FROM accounts ORDER BY id')).toEqual(want);
    expect(await rowsOnDisk(path.join(dataDir, 'accounts'))).toEqual(want);
    expect((await status(del.body.writeId)).status).toBe('visible');
  }, 90_000);

  it('refuses bad writes before queuing, with a clear message', async () => {
    expect((await post(port, '/v1/tables/nope/delete', { key: ['id'], rows: [{ id: 1 }] })).status).toBe(404);
    const missingKey = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: [{ name: 'x' }] });
    expect(missingKey.status).toBe(400);
    expect(missingKey.body.error.message).toMatch(/rows\[0\] has no value for key column "id"/);
    const unknownKey = await post(port, '/v1/tables/accounts/upsert', { key: ['uuid'], rows: [{ uuid: 'x' }] });
    expect(unknownKey.status).toBe(400);
    expect(unknownKey.body.error.message).toMatch(/no column "uuid"/);
    expect((await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: [1, 2] })).body.error.message).toMatch(/rows\[0\] is not an object/);
    expect((await post(port, '/v1/tables/Bad-Name/upsert', { key: ['id'], rows: [{ id: 1 }] })).status).toBe(400);
    expect((await fetch(`http://127.0.0.1:${port}/v1/writes/accounts.1-1`)).status).toBe(404);
  });

  it('upserts keyed on a JSON column of mixed scalars (text), and refuses a key column of nested values at once', async () => {
    await writeFile(
      path.join(dataDir, 'movies.json'),
      JSON.stringify([
        { Title: 'The Matrix', Year: 1999, Info: { genre: 'sf' } },
        { Title: 1776, Year: 1972, Info: { genre: 'musical' } },
        { Title: 'Heat', Year: 1995, Info: [1] },
      ]),
    );
    await waitFor('movies served', async () => (await rows(port, 'SELECT count(*) AS n FROM movies'))[0]?.n === 3);
    const w = await post(port, '/v1/tables/movies/upsert', { key: ['Title'], rows: [{ Title: 'Heat', Year: 1996 }, { Title: 1776, Year: 1973 }] });
    expect(w.status).toBe(202);
    const r = await query(port, 'SELECT "Title", "Year" FROM movies ORDER BY "Year"', { after: w.body.writeId });
    expect(r.status).toBe(200);
    expect(r.body.rows).toEqual([
      { Title: '1776', Year: 1973 },
      { Title: 'Heat', Year: 1996 },
      { Title: 'The Matrix', Year: 1999 },
    ]);
    const nested = await post(port, '/v1/tables/movies/upsert', { key: ['Info'], rows: [{ Info: 'x', Year: 1 }] });
    expect(nested.status).toBe(400);
    expect(nested.body.error.message).toMatch(/column "Info" of table "movies" is JSON: a key column must hold single values/);
  });

  it('never rewrites an Arrow IPC file: a write to its rows fails with the reason, a new key lands beside it', async () => {
    await writeFile(path.join(dataDir, 'stock.arrow'), A.tableToIPC(A.tableFromArrays({ sku: Int32Array.from([1, 2]), qty: Int32Array.from([10, 20]) }), 'file'));
    await waitFor('stock served', async () => (await rows(port, 'SELECT count(*) AS n FROM stock'))[0]?.n === 2);
    const fresh = await post(port, '/v1/tables/stock/upsert', { key: ['sku'], rows: [{ sku: 3, qty: 30 }] });
    const r = await query(port, 'SELECT sku, qty FROM stock ORDER BY sku', { after: fresh.body.writeId });
    expect(r.body.error).toBeUndefined();
    expect(r.body.rows).toEqual([
      { sku: 1, qty: 10 },
      { sku: 2, qty: 20 },
      { sku: 3, qty: 30 },
    ]);
    const held = await post(port, '/v1/tables/stock/upsert', { key: ['sku'], rows: [{ sku: 1, qty: 11 }] });
    const s = await waitFor('arrow write refused', async () => {
      const st = await status(held.body.writeId);
      return st.status === 'failed' ? st : undefined;
    }, 60_000);
    expect(s.error).toMatch(/^refused: stock\.arrow is an Arrow IPC file, which FlashDuck reads but does not rewrite, and 1 key\(s\) of this write are in it/);
    expect(await rows(port, 'SELECT qty FROM stock WHERE sku = 1')).toEqual([{ qty: 10 }]);
  });

  describe('Idempotency-Key', () => {
    const send = async (body: unknown, key?: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/tables/notes/upsert`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key !== undefined ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify(body),
      });
      return { status: res.status, replayed: res.headers.get('idempotent-replayed'), body: (await res.json()) as { writeId?: string; error?: { code: string; message: string } } };
    };
    const note = (text: string) => ({ key: ['id'], rows: [{ id: 7, note: text }] });
    let redis: Redis;
    const queued = () => redis.xlen(createKeys(prefix).tableWrites('notes'));
    beforeAll(async () => {
      redis = new Redis(TEST_REDIS_URL);
      await writeFile(path.join(dataDir, 'notes.csv'), 'id,note\n7,zero\n');
      await waitFor('notes served', async () => (await rows(port, 'SELECT count(*) AS n FROM notes'))[0]?.n === 1);
    });
    afterAll(() => redis?.disconnect());

    it('a retry of a write already applied and since overwritten changes nothing and answers the first writeId', async () => {
      const first = await send(note('first'), 'req-first');
      expect(first.status).toBe(202);
      expect(first.replayed).toBeNull();
      expect((await query(port, 'SELECT note FROM notes WHERE id = 7', { after: first.body.writeId })).body.rows).toEqual([{ note: 'first' }]);
      const second = await send(note('second'), 'req-second');
      expect((await query(port, 'SELECT note FROM notes WHERE id = 7', { after: second.body.writeId })).body.rows).toEqual([{ note: 'second' }]);
      const before = await queued();
      const retry = await send(note('first'), 'req-first');
      expect(retry.status).toBe(202);
      expect(retry.replayed).toBe('true');
      expect(retry.body.writeId).toBe(first.body.writeId);
      expect(await queued()).toBe(before);
      expect((await query(port, 'SELECT note FROM notes WHERE id = 7')).body.rows).toEqual([{ note: 'second' }]);
    });

    it('refuses the same key with another request (422), and a malformed key (400)', async () => {
      const other = await send(note('something else'), 'req-first');
      expect(other.status).toBe(422);
      expect(other.body.error?.code).toBe('idempotency_key_reused');
      expect(other.body.error?.message).toMatch(/Idempotency-Key "req-first" was used for another request to notes/);
      expect((await send(note('x'), 'has space')).status).toBe(400);
      expect((await send(note('x'), 'k'.repeat(201))).status).toBe(400);
    });

    it('queues once for concurrent requests with one key', async () => {
      const before = await queued();
      const all = await Promise.all(Array.from({ length: 8 }, () => send(note('concurrent'), 'req-concurrent')));
      expect(all.map((r) => r.status)).toEqual(Array(8).fill(202));
      expect(new Set(all.map((r) => r.body.writeId)).size).toBe(1);
      expect(all.filter((r) => r.replayed === 'true')).toHaveLength(7);
      expect(await queued()).toBe(before + 1);
    });

    it('answers a retry the same after query-api was SIGKILLed (the key lives in Redis)', async () => {
      const first = await send(note('before the kill'), 'req-kill');
      const api = procs.find((p) => p.app === 'query-api')!;
      await api.kill('SIGKILL');
      procs.splice(procs.indexOf(api), 1);
      const next = AppProcess.start('query-api', env);
      procs.push(next);
      await next.waitForLog(/"msg":"query-api listening"/);
      // It listens before its first snapshot load and answers 503 until then (/readyz says when it is done).
      await waitFor('query-api ready again', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
      const retry = await send(note('before the kill'), 'req-kill');
      expect(retry.status).toBe(202);
      expect(retry.replayed).toBe('true');
      expect(retry.body.writeId).toBe(first.body.writeId);
    });

    it('refuses unknown fields in a write or a query instead of ignoring them', async () => {
      const w = await post(port, '/v1/tables/notes/upsert', { key: ['id'], rows: [{ id: 1 }], idempotencyKey: 'x' });
      expect(w.status).toBe(400);
      expect(w.body.error.message).toMatch(/unknown field "idempotencyKey"/);
      const q = await query(port, 'SELECT 1', { fromat: 'csv' });
      expect(q.status).toBe(400);
      expect(q.body.error.message).toMatch(/unknown field "fromat"/);
      expect((await fetch(`http://127.0.0.1:${port}/v1/query?sql=SELECT%201&fromat=csv`)).status).toBe(400);
      // Also once the same query is in the result cache (answered before the full app sees it).
      expect((await query(port, 'SELECT 1')).status).toBe(200);
      expect((await query(port, 'SELECT 1', { fromat: 'csv' })).status).toBe(400);
      expect((await fetch(`http://127.0.0.1:${port}/v1/query?sql=SELECT%201`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/v1/query?sql=SELECT%201&fromat=csv`)).status).toBe(400);
    });
  });

  it('dead-letters a write that cannot be stored, with its reason, and applies the ones after it', async () => {
    const bad = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: [{ id: 1, balance: 'lots' }] });
    const good = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: [{ id: 2, balance: 42 }] });
    const s = await waitFor('poison refused', async () => {
      const st = await status(bad.body.writeId);
      return st.status === 'failed' ? st : undefined;
    });
    expect(s.error).toMatch(/column "balance" is BIGINT; "lots" is not a BIGINT/);
    const r = await query(port, 'SELECT balance FROM accounts WHERE id = 2', { after: good.body.writeId });
    expect(r.body.rows).toEqual([{ balance: 42 }]);
    const after = await query(port, 'SELECT 1', { after: bad.body.writeId });
    expect(after.status).toBe(409);
    expect(after.body.error.code).toBe('conflict');
  });

  it('keeps manual edits made to a file between writes', async () => {
    await writeFile(path.join(dataDir, 'accounts', 'manual.csv'), 'id,name,balance\n5000,by-hand,7\n5001,also-by-hand,8\n');
    await waitFor('manual rows visible', async () => (await rows(port, 'SELECT count(*) AS n FROM accounts WHERE id >= 5000'))[0]?.n === 2);
    const w = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: [{ id: 5001, balance: 80 }, { id: 3, balance: 3 }] });
    await query(port, 'SELECT 1', { after: w.body.writeId });
    expect(await rows(port, 'SELECT id, name, balance FROM accounts WHERE id IN (3, 5000, 5001) ORDER BY id')).toEqual([
      { id: 3, name: 'acct-3', balance: 3 },
      { id: 5000, name: 'by-hand', balance: 7 },
      { id: 5001, name: 'also-by-hand', balance: 80 },
    ]);
    const manual = await rowsOnDisk(path.join(dataDir, 'accounts')).then((all) => all.filter((r) => Number(r.id) >= 5000));
    expect(manual).toHaveLength(2);
    expect(await (await import('node:fs/promises')).readFile(path.join(dataDir, 'accounts', 'manual.csv'), 'utf8')).toBe('id,name,balance\n5000,by-hand,7\n5001,also-by-hand,80\n');
  });

  it('with two appliers, interleaved upserts of the same keys end with the last one in stream order', async () => {
    const second = AppProcess.start('write-applier', { ...env, FLASHDUCK_INSTANCE_ID: 'applier-2' });
    procs.push(second);
    await second.waitForLog(/write-applier started/);
    let last = '';
    for (let i = 1; i <= 40; i++) {
      const r = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: Array.from({ length: 10 }, (_, k) => ({ id: 100 + k, balance: i * 1000 + k })) });
      last = r.body.writeId;
    }
    const r = await query(port, 'SELECT id, balance FROM accounts WHERE id BETWEEN 100 AND 109 ORDER BY id', { after: last });
    expect(r.body.rows).toEqual(Array.from({ length: 10 }, (_, k) => ({ id: 100 + k, balance: 40_000 + k })));
    const files = (await rowsOnDisk(path.join(dataDir, 'accounts'))).filter((x) => Number(x.id) >= 100 && Number(x.id) <= 109);
    expect(files).toHaveLength(10);
  }, 60_000);

  it('leaves a file alone when a write changes nothing in it (the same upsert sent again): no new version', async () => {
    const rowsIn = [{ id: 1, balance: 111 }];
    const first = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: rowsIn });
    await query(port, 'SELECT 1', { after: first.body.writeId });
    const tableVersion = async () => ((await (await fetch(`http://127.0.0.1:${port}/v1/tables/accounts`)).json()) as { version: number; files: { path: string; modifiedAt: string }[] });
    const before = await tableVersion();
    const again = await post(port, '/v1/tables/accounts/upsert', { key: ['id'], rows: rowsIn });
    const r = await query(port, 'SELECT balance FROM accounts WHERE id = 1', { after: again.body.writeId });
    expect(r.body.rows).toEqual([{ balance: 111 }]);
    expect((await status(again.body.writeId)).status).toBe('visible');
    // Give the monitor a few polls: nothing changed on disk, so nothing is rebuilt.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await tableVersion();
    expect(after.version).toBe(before.version);
    expect(after.files).toEqual(before.files);
  });

  it('shows the writes stream in flashduck status', async () => {
    const { spawnSync } = await import('node:child_process');
    const out = spawnSync(process.execPath, [path.join(process.cwd(), 'apps/cli/dist/main.js'), 'status', '--json'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    const s = JSON.parse(out.stdout);
    const w = s.writes.find((x: { table: string }) => x.table === 'accounts');
    expect(w).toMatchObject({ table: 'accounts', pending: 0, deadLetters: 1 });
    expect(w.lag).toBe(0);
  });
});
