import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows, waitFor } from './helpers.js';
import { startStack, type Stack } from './stack.js';

describe('result cache and ETags', () => {
  let stack: Stack;
  const url = (p: string) => `http://127.0.0.1:${stack.api.port}${p}`;
  const get = (sql: string, headers: Record<string, string> = {}) => fetch(url(`/v1/query?sql=${encodeURIComponent(sql)}`), { headers });
  const post = (sql: string, headers: Record<string, string> = {}) =>
    fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ sql }) });

  beforeAll(async () => {
    stack = await startStack('cache', {}, async (dir) => writeFile(path.join(dir, 'sales.csv'), 'id,amount\n1,10\n2,20\n'));
    await waitFor('sales served', async () => (await rows(stack.api.port, 'SELECT count(*) AS n FROM sales'))[0]?.n === 2);
  });
  afterAll(async () => stack?.stop());

  it('answers a repeated query from the cache, byte for byte, over GET and POST', async () => {
    const sql = 'SELECT sum(amount) AS total FROM sales';
    const first = await get(sql);
    expect(first.headers.get('x-flashduck-cache')).toBe('miss');
    const body = await first.text();
    const second = await get(`  ${sql.replace(' FROM', '\n  FROM')} ;`);
    expect(second.headers.get('x-flashduck-cache')).toBe('hit');
    expect(await second.text()).toBe(body);
    const third = await post(sql);
    expect(third.headers.get('x-flashduck-cache')).toBe('hit');
    expect(await third.text()).toBe(body);
    expect(JSON.parse(body).rows).toEqual([{ total: 30 }]);
  });

  it('gives an ETag from the table versions and answers If-None-Match with 304', async () => {
    const sql = 'SELECT count(*) AS n FROM sales';
    const r = await get(sql);
    const etag = r.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    expect((await get(sql, { 'if-none-match': etag })).status).toBe(304);
    expect((await post(sql, { 'if-none-match': etag })).status).toBe(304);
  });

  it('never serves an old answer after the table changes: new version, new ETag, fresh rows', async () => {
    const sql = 'SELECT count(*) AS n FROM sales';
    const before = await get(sql);
    const etag = before.headers.get('etag')!;
    await appendFile(path.join(stack.dataDir, 'sales.csv'), '3,30\n');
    await waitFor('new version served', async () => (await rows(stack.api.port, 'SELECT max(id) AS m FROM sales'))[0]?.m === 3);
    const after = await get(sql, { 'if-none-match': etag });
    expect(after.status).toBe(200);
    expect(after.headers.get('etag')).not.toBe(etag);
    expect((await after.json()).rows).toEqual([{ n: 3 }]);
  });

  it('answers POST bodies the same whether the cache answers or the full app does', async () => {
    const bad = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sql": "SELECT 1",' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatchObject({ code: 'bad_request', message: expect.stringMatching(/not valid JSON/) });
    const noSql = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"format": "csv"}' });
    expect(noSql.status).toBe(400);
    expect((await noSql.json()).error.message).toMatch(/needs "sql"/);
    const sql = 'SELECT count(*) AS n FROM sales WHERE id > 0';
    const miss = await post(sql, { 'x-test': 'miss' });
    expect(miss.headers.get('x-flashduck-cache')).toBe('miss');
    const hit = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql, format: 'json' }) });
    expect(hit.headers.get('x-flashduck-cache')).toBe('hit');
    expect(await hit.text()).toBe(await miss.text());
    const csv = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql, format: 'csv' }) });
    expect(csv.headers.get('x-flashduck-cache')).toBe('miss'); // another format, another answer
    expect(await csv.text()).toMatch(/^n\n\d+\n$/);
  });

  it('never caches a query with a volatile function', async () => {
    const a = await get('SELECT random() AS r');
    const b = await get('SELECT random() AS r');
    expect(a.headers.get('x-flashduck-cache')).toBe('off');
    expect(b.headers.get('x-flashduck-cache')).toBe('off');
    expect((await a.json()).rows[0].r).not.toBe((await b.json()).rows[0].r);
  });

  it('keeps formats apart', async () => {
    const sql = 'SELECT id FROM sales ORDER BY id';
    await get(sql);
    const csv = await fetch(url(`/v1/query?format=csv&sql=${encodeURIComponent(sql)}`));
    expect(csv.headers.get('content-type')).toMatch(/csv/);
    expect(await csv.text()).toBe('id\n1\n2\n3\n');
  });

  it('never answers from an old version when the query does not spell out the tables it reads', async () => {
    // The table name is computed, or the query reads the catalog: its answer depends on every table's version.
    const computed = "SELECT count(*) AS n FROM query_table('sa' || 'les')";
    const catalog = "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'sales'";
    const n = async () => Number((await rows(stack.api.port, 'SELECT count(*) AS n FROM sales'))[0]?.n);
    const before = await n();
    for (const sql of [computed, catalog]) await get(sql); // cached now
    expect((await get(computed)).headers.get('x-flashduck-cache')).toBe('hit');
    const hit = await get(computed);
    expect(Object.keys((await hit.json()).tables)).toEqual(['sales']);
    await appendFile(path.join(stack.dataDir, 'sales.csv'), `${before + 10},1\n`);
    await waitFor('new version served', async () => (await n()) === before + 1);
    const after = await get(computed);
    expect(after.headers.get('x-flashduck-cache')).toBe('miss');
    expect((await after.json()).rows).toEqual([{ n: before + 1 }]);
    // A new column makes the catalog answer change too.
    const columns = async () => (await (await get(catalog)).json()).rows[0].n as number;
    const cols = await columns();
    await writeFile(path.join(stack.dataDir, 'sales.csv'), `id,amount,note\n1,10,x\n`);
    await waitFor('a third column served', async () => (await rows(stack.api.port, 'SELECT * FROM sales LIMIT 1')).length === 1 && Object.keys((await rows(stack.api.port, 'SELECT * FROM sales LIMIT 1'))[0]!).length === 3);
    expect(await columns()).toBeGreaterThan(cols);
  });
});
