import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import http from 'node:http';
import { tableFromIPC } from 'apache-arrow';
import { DuckDBInstance } from '@duckdb/node-api';
import { createLogger } from '@flashduck/core';
import { loadQueryApiConfig, startQueryApi, type QueryApi } from '@flashduck/query-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query, rows, waitFor } from './helpers.js';
import { startStack, type Stack } from './stack.js';

describe('query-api: read-only, bounded, in every format', () => {
  let stack: Stack;
  let port: number;
  /**
   * A second replica of the same tables with the default deadline, for the tests of large results: on the first
   * one, whose 1.5 s deadline the deadline tests need, a large result would race the deadline (a slow moment
   * answers 408 instead of the size cut the test is about).
   */
  let bulkApi: QueryApi;
  const url = (p: string) => `http://127.0.0.1:${port}${p}`;
  const snapshot = async () => ({ rows: await rows(port, 'SELECT * FROM orders ORDER BY id'), version: (await (await fetch(url('/v1/tables/orders'))).json()).version });

  beforeAll(async () => {
    stack = await startStack('qsafe', { QUERY_TIMEOUT_MS: '1500', QUERY_MAX_ROWS: '50', QUERY_MAX_BODY_BYTES: '4096', QUERY_MEMORY_LIMIT_MB: '256', QUERY_MAX_STREAM_BYTES: String(12 * 1024 * 1024) }, async (dir) => {
      await writeFile(
        path.join(dir, 'orders.csv'),
        'id,customer,amount,big,created_at\n1,ada,10.5,9007199254740993,2024-01-02 03:04:05.123456\n2,grace,20,5,2024-02-03 00:00:00\n',
      );
    });
    port = stack.api.port;
    bulkApi = await startQueryApi({ config: loadQueryApiConfig({ ...stack.env, QUERY_TIMEOUT_MS: '120000' }), log: createLogger('silent') });
    await waitFor('orders served', async () => (await rows(port, 'SELECT count(*) AS n FROM orders'))[0]?.n === 2);
  });
  afterAll(async () => {
    await bulkApi?.stop();
    await stack?.stop();
  });

  const refused = [
    'DROP TABLE orders',
    'DELETE FROM orders',
    "INSERT INTO orders (id) VALUES (3)",
    'UPDATE orders SET amount = 0',
    'CREATE TABLE x AS SELECT 1',
    'CREATE TEMP TABLE x AS SELECT 1',
    'ALTER TABLE orders ADD COLUMN y INTEGER',
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('/etc/*')",
    "COPY orders TO '/tmp/flashduck-stolen.csv'",
    "COPY (SELECT 1) TO '/tmp/flashduck-stolen.csv'",
    "ATTACH '/tmp/flashduck-x.db' AS x",
    'DETACH fd_orders',
    'INSTALL httpfs',
    'LOAD httpfs',
    'SET threads = 1',
    "SET search_path = 'memory.main'",
    'RESET threads',
    'PRAGMA enable_profiling',
    'CHECKPOINT',
    "EXPORT DATABASE '/tmp/flashduck-export'",
    'SELECT 1; DROP TABLE orders',
    'USE memory',
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM parquet_metadata('/etc/passwd')",
    "SELECT * FROM read_json('/etc/hostname')",
    "SELECT * FROM read_parquet('/etc/x.parquet')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM read_text('/proc/self/environ')",
    "SELECT * FROM read_csv('~/.bashrc')",
    "SELECT * FROM '~/.profile'",
    "SELECT * FROM glob('*')",
    "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
    "SELECT * FROM query_table('/etc/passwd')",
    "SELECT * FROM query('DROP TABLE orders')",
    "SELECT getenv('HOME')",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/flashduck-explain.csv'",
    'EXPLAIN ANALYZE DROP TABLE orders',
    "PRAGMA memory_limit='100GB'",
    'PRAGMA threads=1',
    "SET VARIABLE x = 1",
    "CREATE MACRO m(a) AS a + 1",
    "ATTACH ':memory:' AS m",
    "IMPORT DATABASE '/tmp'",
    "LOAD '/tmp/evil.duckdb_extension'",
    'VACUUM',
    'FROM orders; FROM orders',
    'BEGIN TRANSACTION',
  ];

  it.each(refused)('refuses %s with 400 and leaves the table as it was', async (sql) => {
    const before = await snapshot();
    const r = await query(port, sql);
    expect(r.status).toBe(400);
    expect(['refused_statement', 'bad_sql']).toContain(r.body.error.code);
    expect(r.body.error.message.length).toBeGreaterThan(5);
    expect(await snapshot()).toEqual(before);
    const { existsSync } = await import('node:fs');
    expect(existsSync('/tmp/flashduck-explain.csv') || existsSync('/tmp/flashduck-stolen.csv')).toBe(false);
  });

  it.each([
    ['DELETE FROM orders WHERE id = 1', /^DELETE statements are not allowed: FlashDuck answers read-only queries.*upsert or \/delete/],
    ['UPDATE orders SET amount = 0', /^UPDATE statements are not allowed/],
    ["INSERT INTO orders (id) VALUES (3)", /^INSERT statements are not allowed/],
    ['  -- a comment\n INSTALL httpfs', /^INSTALL statements are not allowed/],
    ['BEGIN TRANSACTION', /^BEGIN statements are not allowed/],
    ['PRAGMA database_list', /^PRAGMA statements other than PRAGMA table_info/],
    ['SELECT * FROM duckdb_databases()', /^duckdb_databases is not available: it shows the server's own files/],
    ['SELECT path FROM pragma_database_list', /^pragma_database_list is not available/],
    ["SELECT current_setting('temp_directory')", /^current_setting is not available/],
  ])('refuses %s as refused_statement, naming it and what to do instead', async (sql, message) => {
    const r = await query(port, sql);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('refused_statement');
    expect(r.body.error.message).toMatch(message);
  });

  it('still answers the reads users list tables and columns with', async () => {
    expect((await query(port, 'SHOW TABLES')).status).toBe(200);
    expect((await query(port, "PRAGMA table_info('orders')")).body.rowCount).toBe(5);
    expect((await query(port, 'DESCRIBE orders')).body.rowCount).toBe(5);
  });

  it.each([
    ['a CPU bomb', 'SELECT count(*) FROM range(1000000) a, range(1000000) b'],
    ['a memory bomb', 'SELECT list(range) FROM range(400000000)'],
    ['a recursive bomb', 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r'],
  ])('stops %s (deadline or memory limit) and keeps every table as it was', async (_name, sql) => {
    const before = await snapshot();
    const r = await query(port, sql);
    expect([408, 413]).toContain(r.status);
    expect(await snapshot()).toEqual(before);
  });

  it('cuts a runaway query at the deadline with an interrupt, and keeps answering', async () => {
    const t0 = Date.now();
    const r = await query(port, 'SELECT count(*) FROM range(1e12::BIGINT)');
    const elapsed = Date.now() - t0;
    expect(r.status).toBe(408);
    expect(r.body.error.code).toBe('timeout');
    expect(elapsed).toBeLessThan(10_000);
    expect(await rows(port, 'SELECT count(*) AS n FROM orders')).toEqual([{ n: 2 }]);
  });

  it('caps rows and marks the result truncated', async () => {
    const r = await query(port, 'SELECT range AS i FROM range(100)');
    expect(r.status).toBe(200);
    expect(r.body.rowCount).toBe(50);
    expect(r.body.rows).toHaveLength(50);
    expect(r.body.truncated).toBe(true);
    const exact = await query(port, 'SELECT range AS i FROM range(50)');
    expect(exact.body.truncated).toBe(false);
  });

  /** A POST to the bulk replica with node:http, which exposes trailers and tells a complete response from an aborted one. */
  const raw = (sql: string, format: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; trailers: NodeJS.Dict<string>; body: Buffer; complete: boolean }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: bulkApi.port, path: '/v1/query', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(parts), complete: res.complete });
        res.on('end', done);
        res.on('error', done);
        res.on('aborted', done);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ sql, format }));
    });
  const ROWS_SQL = (n: number) => `SELECT range AS i, 'row ' || range AS label, range * 0.5 AS half FROM range(${n})`;

  it('streams every row in csv, ndjson, arrow and parquet past the JSON row cap, with the count at the end', async () => {
    // ~7.8 MB: past the 4 MB answered whole, so it streams.
    const csv = await raw(ROWS_SQL(300_000), 'csv');
    expect(csv.status).toBe(200);
    expect(csv.headers['x-flashduck-streamed']).toBe('true');
    expect(csv.complete).toBe(true);
    expect(csv.trailers['x-flashduck-row-count']).toBe('300000');
    const lines = csv.body.toString().split('\n');
    expect(lines).toHaveLength(300_002);
    expect(lines[0]).toBe('i,label,half');
    expect(lines[300_000]).toBe('299999,row 299999,149999.5');
    const nd = await raw(ROWS_SQL(60_000), 'ndjson');
    expect(nd.body.toString().trimEnd().split('\n')).toHaveLength(60_000);
    const arrow = await raw(ROWS_SQL(120_000), 'arrow');
    const table = tableFromIPC(new Uint8Array(arrow.body));
    expect(table.numRows).toBe(120_000);
    expect(table.getChild('label')?.get(119_999)).toBe('row 119999');
    const pq = await raw(ROWS_SQL(120_000), 'parquet');
    expect(pq.body.subarray(0, 4).toString()).toBe('PAR1');
    const file = path.join(stack.dataDir, '..', 'streamed.parquet');
    await writeFile(file, pq.body);
    const db = await (await DuckDBInstance.create(':memory:')).connect();
    expect((await db.runAndReadAll(`SELECT count(*)::INTEGER AS n, sum(i)::BIGINT AS s FROM '${file}'`)).getRowObjectsJson()).toEqual([{ n: 120_000, s: '7199940000' }]);
    db.closeSync();
  });

  it('answers every type DuckDB has, extreme values included, in every format', async () => {
    const cols: Record<string, string> = {
      d_max: "DATE '5881580-07-10'", d_min: "DATE '-5877641-06-25'", d_inf: "'infinity'::DATE", ts_max: "TIMESTAMP '294247-01-10 04:00:54.775806'",
      ts_inf: "'-infinity'::TIMESTAMP", ts_ns: "TIMESTAMP_NS '2262-04-11 23:47:16.854775'", tstz: "TIMESTAMPTZ '2024-01-01 12:00:00+02'", t: "TIME '23:59:59.999999'",
      h: '170141183460469231731687303715884105727::HUGEINT', uh: '340282366920938463463374607431768211455::UHUGEINT', ub: '18446744073709551615::UBIGINT',
      dec: '12345678901234567890123456789.123456789::DECIMAL(38,9)', iv: "INTERVAL '1 year 2 months 3 days 04:05:06.789'",
      u: "'123e4567-e89b-12d3-a456-426614174000'::UUID", bl: "'\\xAA\\x00\\xBB'::BLOB", bt: "'10101'::BIT", l: '[1, 2, NULL]',
      st: "{'a': 1, 'b': [2], 'c': {'x': 'y'}}", m: "MAP {'k': 1}", arr: '[1, 2, 3]::INTEGER[3]', e: "'x'::ENUM('x', 'y')", nan: "'NaN'::DOUBLE",
    };
    const sql = `SELECT ${Object.entries(cols).map(([n, e]) => `${e} AS ${n}`).join(', ')}`;
    const json = await query(port, sql);
    expect(json.status).toBe(200);
    expect(json.body.rows[0]).toMatchObject({
      d_max: '5881580-07-10', d_min: '5877642-06-25 (BC)', d_inf: 'infinity', ts_max: '294247-01-10 04:00:54.775806', ts_inf: '-infinity',
      h: '170141183460469231731687303715884105727', uh: '340282366920938463463374607431768211455', ub: '18446744073709551615',
      dec: '12345678901234567890123456789.123456789', iv: '1 year 2 months 3 days 04:05:06.789', u: '123e4567-e89b-12d3-a456-426614174000',
      bl: 'qgC7', bt: '10101', l: [1, 2, null], st: { a: 1, b: [2], c: { x: 'y' } }, arr: [1, 2, 3], e: 'x', nan: 'NaN',
    });
    const csv = await raw(sql, 'csv');
    expect(csv.status).toBe(200);
    const line = csv.body.toString().split('\n')[1]!;
    for (const v of ['5881580-07-10', 'infinity', '294247-01-10 04:00:54.775806', '170141183460469231731687303715884105727', '1 year 2 months 3 days 04:05:06.789', '10101']) expect(line).toContain(v);
    expect((await raw(sql, 'ndjson')).status).toBe(200);
    const arrow = tableFromIPC(new Uint8Array((await raw(sql, 'arrow')).body));
    expect(arrow.numRows).toBe(1);
    expect(arrow.getChild('ts_max')?.data[0]?.values[0]).toBe(9223372036854775806n);
    expect(arrow.getChild('h')?.get(0)).toBe('170141183460469231731687303715884105727');
    expect(Number.isNaN(arrow.getChild('nan')?.get(0))).toBe(true);
    // Parquet read back by DuckDB: the same text for every column (HUGEINTs as text: Parquet has no 128-bit integer).
    const pq = await raw(sql, 'parquet');
    expect(pq.status).toBe(200);
    const file = path.join(stack.dataDir, '..', 'types.parquet');
    await writeFile(file, pq.body);
    const db = await (await DuckDBInstance.create(':memory:')).connect();
    await db.run("SET TimeZone='UTC'");
    const names = Object.keys(cols);
    const back = (await db.runAndReadAll(`SELECT ${names.map((n) => `${n}::VARCHAR AS ${n}`).join(', ')} FROM '${file}'`)).getRowObjectsJson()[0];
    const direct = (await db.runAndReadAll(`SELECT ${names.map((n) => `(${cols[n]})::VARCHAR AS ${n}`).join(', ')}`)).getRowObjectsJson()[0];
    expect(back).toEqual(direct);
    db.closeSync();
  });

  it('a small file-format result is answered whole, with its row count; a JSON one is still capped', async () => {
    const csv = await raw(ROWS_SQL(100), 'csv');
    expect(csv.headers['x-flashduck-streamed']).toBeUndefined();
    expect(csv.headers['content-length']).toBe(String(csv.body.length));
    expect(csv.headers['x-flashduck-row-count']).toBe('100');
    expect(csv.headers['x-flashduck-truncated']).toBe('false');
    expect((await query(port, ROWS_SQL(100))).body.rowCount).toBe(50);
  });

  it('refuses with 413 a result over QUERY_MAX_STREAM_BYTES caught before streaming, and aborts one caught after', async () => {
    // 1.5M rows of CSV are ~40 MB: the cap (12 MB) is passed after the first 4 MB went out.
    const cut = await raw(ROWS_SQL(1_500_000), 'csv');
    expect(cut.status).toBe(200);
    expect(cut.complete).toBe(false);
    expect(cut.trailers['x-flashduck-complete']).toBeUndefined();
    expect(cut.body.length).toBeGreaterThan(4 * 1024 * 1024);
    expect(cut.body.length).toBeLessThanOrEqual(12 * 1024 * 1024);
    // Parquet knows its size before the first byte: a proper 413 (random doubles barely compress: ~16 MB).
    const pq = await raw('SELECT random() AS a, random() AS b FROM range(1000000)', 'parquet');
    expect(pq.status).toBe(413);
    expect(JSON.parse(pq.body.toString()).error.message).toMatch(/QUERY_MAX_STREAM_BYTES/);
    expect(await rows(bulkApi.port, 'SELECT count(*) AS n FROM orders')).toEqual([{ n: 2 }]);
    const metrics = await (await fetch(`http://127.0.0.1:${bulkApi.port}/metrics`)).text();
    expect(metrics).toMatch(/flashduck_query_streams_cut_total\{reason="too_large"\} [1-9]/);
  });

  it('answers JSON with column types, safe integers, ISO timestamps and the table versions read', async () => {
    const r = await query(port, 'SELECT id, big, created_at FROM orders ORDER BY id');
    expect(r.status).toBe(200);
    expect(r.body.columns).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'big', type: 'BIGINT' },
      { name: 'created_at', type: 'TIMESTAMP' },
    ]);
    expect(r.body.rows[0]).toEqual({ id: 1, big: '9007199254740993', created_at: '2024-01-02T03:04:05.123456Z' });
    expect(r.body.rows[1]).toEqual({ id: 2, big: 5, created_at: '2024-02-03T00:00:00.000Z' });
    expect(Object.keys(r.body.tables)).toEqual(['orders']);
    expect(r.body.tables.orders).toBeGreaterThan(0);
    expect(typeof r.body.elapsedMs).toBe('number');
  });

  it('answers CSV, NDJSON and Arrow with the same rows', async () => {
    const csv = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT id, customer FROM orders ORDER BY id', format: 'csv' }) });
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    expect(await csv.text()).toBe('id,customer\n1,ada\n2,grace\n');

    const nd = await fetch(url(`/v1/query?sql=${encodeURIComponent('SELECT id, customer FROM orders ORDER BY id')}&format=ndjson`));
    expect((await nd.text()).trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { id: 1, customer: 'ada' },
      { id: 2, customer: 'grace' },
    ]);

    const arrow = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT id, customer, amount, created_at FROM orders ORDER BY id', format: 'arrow' }) });
    expect(arrow.headers.get('content-type')).toBe('application/vnd.apache.arrow.stream');
    const table = tableFromIPC(new Uint8Array(await arrow.arrayBuffer()));
    expect(table.numRows).toBe(2);
    expect(table.getChild('id')?.get(1)).toBe(2n);
    expect(table.getChild('customer')?.toArray()).toEqual(['ada', 'grace']);
    expect(table.getChild('amount')?.get(0)).toBe(10.5);
    expect(String(table.schema.fields.find((f) => f.name === 'created_at')?.type)).toBe('Timestamp<MICROSECOND>');
  });

  it('reports bad SQL, unknown tables and bad requests as 4xx JSON errors', async () => {
    expect((await query(port, 'SELEC 1')).body.error.code).toBe('bad_sql');
    const unknown = await query(port, 'SELECT * FROM nope');
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/nope/);
    expect((await query(port, 'SELECT 1', { format: 'xml' })).status).toBe(400);
    expect((await fetch(url('/v1/tables/nope'))).status).toBe(404);
    const bad = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sql":' });
    expect(bad.status).toBe(400);
    const big = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: `SELECT '${'x'.repeat(5000)}'` }) });
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('too_large');
    const missing = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(missing.status).toBe(400);
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200);
    expect((await fetch(url('/readyz'))).status).toBe(200);
    const metrics = await (await fetch(url('/metrics'))).text();
    expect(metrics).toMatch(/flashduck_query_requests_total\{format="json",outcome="ok"\} \d+/);
    expect(metrics).toMatch(/flashduck_query_served_version\{table="orders"\} \d+/);
  });

  it('serves the web console from query-api itself (no CDN)', async () => {
    const res = await fetch(url('/'));
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<title>FlashDuck</title>');
    expect(html).not.toMatch(/<(script|link)[^>]+(src|href)="(https?:)?\/\//);
    const js = await (await fetch(url('/app.js'))).text();
    expect(js).toContain('/v1/query');
    expect((await fetch(url('/assets/chart.js'))).status).toBe(200);
  });

  it('keeps the console under 300 KB of gzipped JavaScript', async () => {
    const { gzipSync } = await import('node:zlib');
    let total = 0;
    for (const asset of ['/app.js', '/assets/chart.js']) total += gzipSync(Buffer.from(await (await fetch(url(asset))).arrayBuffer())).length;
    expect(total).toBeLessThan(300 * 1024);
  });

  it('answers a Parquet result, and compares the cache with the files using built-in queries only', async () => {
    const pq = await fetch(url('/v1/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT id, customer FROM orders ORDER BY id', format: 'parquet' }) });
    const bytes = Buffer.from(await pq.arrayBuffer());
    expect(pq.headers.get('content-type')).toBe('application/vnd.apache.parquet');
    expect(bytes.subarray(0, 4).toString()).toBe('PAR1');
    const cmp = await fetch(url('/v1/tables/orders/compare'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: "COPY orders TO '/tmp/flashduck-cmp.csv'" }) });
    const body = await cmp.json();
    expect(cmp.status).toBe(200);
    expect(body.results.map((r: { query: string }) => r.query)).toEqual(['count(*)', 'GROUP BY customer']);
    expect(body.results[0].rows).toBe(1);
    const { existsSync } = await import('node:fs');
    expect(existsSync('/tmp/flashduck-cmp.csv')).toBe(false);
  });

  it('lists tables with the public shape', async () => {
    const body = await (await fetch(url('/v1/tables'))).json();
    expect(body.tables).toHaveLength(1);
    const t = body.tables[0];
    expect(Object.keys(t).sort()).toEqual(['columns', 'errors', 'files', 'name', 'rows', 'updatedAt', 'version']);
    expect(t).toMatchObject({ name: 'orders', rows: 2, errors: [] });
    expect(t.files[0]).toMatchObject({ path: 'orders.csv', rows: 2, format: 'csv' });
    expect(new Date(t.updatedAt).toISOString()).toBe(t.updatedAt);
  });
});
