import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as A from 'apache-arrow';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { createKeys, Fragment, decode, registry } from '@flashduck/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, query, rows, tempDir, removeDir, waitFor, writeAtomic } from './helpers.js';
import { startStack, type Stack } from './stack.js';

async function makeParquet(file: string, selectSql: string): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run(`SET TimeZone='UTC'`);
  await conn.run(`COPY (${selectSql}) TO '${file}' (FORMAT parquet)`);
  conn.closeSync();
  db.closeSync();
}

const TYPED = `SELECT * FROM (VALUES
  (1, 12345678901::BIGINT, 1.5::DOUBLE, 12.34::DECIMAL(10,2), 'a', DATE '2024-01-02', TIMESTAMP '2024-01-02 03:04:05.123456', TIMESTAMPTZ '2024-01-02 03:04:05+00', true, [1, 2, 3], {'k': 'v', 'n': 1}, TIME '10:11:12', 123456789012345678901234567890.5::DECIMAL(38,1)),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) t(i, big, dbl, dec, str, d, ts, tstz, flag, list, rec, tm, wide)`;

describe('snapshot formats', () => {
  const stacks: Stack[] = [];
  let seedDir: string;

  beforeAll(async () => {
    seedDir = await tempDir('formats-seed');
    await makeParquet(path.join(seedDir, 'typed.parquet'), TYPED);
  });
  afterAll(async () => {
    for (const s of stacks) await s.stop();
    await removeDir(seedDir);
  });

  it('serves the same rows and types from parts stored as parquet, duckdb, json and arrow', async () => {
    const results: unknown[] = [];
    for (const format of ['parquet', 'duckdb', 'json', 'arrow']) {
      const stack = await startStack(`fmt-${format}`, { CACHER_SNAPSHOT_FORMAT: format }, async (dir) => {
        await mkdir(path.join(dir, 'typed'));
        await writeFile(path.join(dir, 'typed', 'a.parquet'), await import('node:fs/promises').then((fs) => fs.readFile(path.join(seedDir, 'typed.parquet'))));
        await writeFile(path.join(dir, 'typed', 'b.csv'), 'i,str,extra\n3,c,x\n');
      });
      stacks.push(stack);
      const r = await waitFor(`typed table (${format})`, async () => {
        const q = await query(stack.api.port, 'SELECT * FROM typed ORDER BY i');
        return q.status === 200 && q.body.rowCount === 3 ? q.body : undefined;
      });
      const meta = await (await fetch(`http://127.0.0.1:${stack.api.port}/v1/tables/typed`)).json();
      expect(meta.snapshot.format).toBe(format);
      results.push({ columns: r.columns, rows: r.rows });
    }
    results.slice(1).forEach((r, i) => expect(r, `format #${i + 2}`).toEqual(results[0]));
    const first = results[0] as { columns: { name: string; type: string }[]; rows: Record<string, unknown>[] };
    expect(first.columns.map((c) => c.type)).toEqual([
      'BIGINT', 'BIGINT', 'DOUBLE', 'DECIMAL(10,2)', 'VARCHAR', 'DATE', 'TIMESTAMP', 'TIMESTAMP WITH TIME ZONE', 'BOOLEAN', 'INTEGER[]', 'STRUCT("k" VARCHAR, "n" INTEGER)', 'TIME', 'DECIMAL(38,1)', 'VARCHAR',
    ]);
    expect(first.rows[0]).toMatchObject({ i: 1, big: 12345678901, dec: 12.34, ts: '2024-01-02T03:04:05.123456Z', tstz: '2024-01-02T03:04:05.000Z', list: [1, 2, 3], rec: { k: 'v', n: 1 }, tm: '10:11:12', wide: '123456789012345678901234567890.5' });
    expect(first.rows[2]).toMatchObject({ i: 3, str: 'c', extra: 'x', big: null });
  }, 120_000);
});

describe('cacher rebuilds', () => {
  let stack: Stack;
  let redis: Redis;
  let port: number;
  const info = async (t: string) => (await fetch(`http://127.0.0.1:${port}/v1/tables/${t}`)).json();

  beforeAll(async () => {
    stack = await startStack('rebuild', { CACHER_CHUNK_BYTES: '4096' });
    port = stack.api.port;
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });

  const fragments = async (table: string) => {
    const raw = await redis.hgetall(createKeys(stack.prefix).tableFragments(table));
    return Object.fromEntries(Object.entries(raw).map(([p, j]) => [p, (decode(Fragment, j) as { ok: true; value: Fragment }).value]));
  };

  it('stores a large part in several chunks and serves it whole', async () => {
    await writeAtomic(path.join(stack.dataDir, 'wide.csv'), `n,s\n${Array.from({ length: 5000 }, (_, i) => `${i},row-${i}-${'x'.repeat(20)}`).join('\n')}\n`);
    await waitFor('wide served', async () => (await rows(port, 'SELECT count(*) AS n, sum(n) AS s FROM wide'))[0]?.n === 5000);
    const meta = await info('wide');
    expect(meta.snapshot.parts).toHaveLength(1);
    expect(meta.snapshot.parts[0].chunks).toBeGreaterThan(1);
    expect(await rows(port, 'SELECT sum(n) AS s FROM wide')).toEqual([{ s: (4999 * 5000) / 2 }]);
  });

  it('re-reads only the file that changed, as one new part; the others keep their parts', async () => {
    await mkdir(path.join(stack.dataDir, 'parts'));
    for (const n of [1, 2, 3]) await writeAtomic(path.join(stack.dataDir, 'parts', `p${n}.csv`), `k,v\n${n},${n * 10}\n`);
    await waitFor('parts served', async () => (await rows(port, 'SELECT count(*) AS n FROM parts'))[0]?.n === 3);
    const before = await fragments('parts');
    const reused = async () => (await registry.getSingleMetric('flashduck_cacher_parts_reused_total')!.get()).values[0]?.value ?? 0;
    const reusedBefore = await reused();
    await appendFile(path.join(stack.dataDir, 'parts', 'p2.csv'), '22,220\n');
    await waitFor('parts updated', async () => (await rows(port, 'SELECT count(*) AS n FROM parts'))[0]?.n === 4);
    // The fragment index is replaced in the same step as the version it describes.
    const after = await fragments('parts');
    expect(after['parts/p1.csv']!.part!.id).toBe(before['parts/p1.csv']!.part!.id);
    expect(after['parts/p3.csv']!.part!.id).toBe(before['parts/p3.csv']!.part!.id);
    expect(after['parts/p2.csv']!.part!.id).not.toBe(before['parts/p2.csv']!.part!.id);
    expect(after['parts/p2.csv']!.rows).toBe(2);
    // The two unchanged files' parts were listed again, not read nor stored again.
    expect((await reused()) - reusedBefore).toBe(2);
    expect((await info('parts')).snapshot.parts.map((p: { id: string }) => p.id).sort()).toEqual(Object.values(after).map((f) => f.part!.id).sort());
  });

  it('reads nothing for a renamed file: its fragment moves to the new name', async () => {
    await mkdir(path.join(stack.dataDir, 'moved'));
    for (const n of [1, 2]) await writeAtomic(path.join(stack.dataDir, 'moved', `m${n}.csv`), `k,v\n${n},${n * 10}\n${n},${n * 11}\n`);
    await waitFor('moved served', async () => (await rows(port, 'SELECT count(*) AS n FROM moved'))[0]?.n === 4);
    await waitFor('fragments stored', async () => Object.keys(await fragments('moved')).length === 2);
    const before = await fragments('moved');
    await rename(path.join(stack.dataDir, 'moved', 'm1.csv'), path.join(stack.dataDir, 'moved', 'renamed.csv'));
    await waitFor('renamed file served', async () => {
      const m = await info('moved');
      return m.files.some((f: { path: string }) => f.path === 'moved/renamed.csv') && !m.files.some((f: { path: string }) => f.path === 'moved/m1.csv');
    });
    expect(await rows(port, 'SELECT k, count(*) AS n FROM moved GROUP BY k ORDER BY k')).toEqual([{ k: 1, n: 2 }, { k: 2, n: 2 }]);
    const after = await waitFor('fragment moved', async () => {
      const f = await fragments('moved');
      return f['moved/renamed.csv'] && !f['moved/m1.csv'] ? f : undefined;
    });
    expect(after['moved/renamed.csv']!.part!.id).toBe(before['moved/m1.csv']!.part!.id); // not read again
    expect(after['moved/m2.csv']!.part!.id).toBe(before['moved/m2.csv']!.part!.id);
  });

  it('keeps the rows of a file that becomes unreadable until it is fixed, and says so', async () => {
    await mkdir(path.join(stack.dataDir, 'keep'));
    await writeAtomic(path.join(stack.dataDir, 'keep', 'good.csv'), 'id,name\n1,a\n');
    await writeAtomic(path.join(stack.dataDir, 'keep', 'flaky.json'), '[{"id": 2, "name": "b"}, {"id": 3, "name": "c"}]');
    await waitFor('keep served', async () => (await rows(port, 'SELECT count(*) AS n FROM keep'))[0]?.n === 3);

    await writeAtomic(path.join(stack.dataDir, 'keep', 'flaky.json'), '[{"id": 4, "name": "d"},');
    const broken = await waitFor('error reported', async () => {
      const m = await info('keep');
      return m.errors.length ? m : undefined;
    });
    expect(broken.errors[0].file).toBe('keep/flaky.json');
    expect(broken.errors[0].message).toMatch(/serving the 2 rows of its last readable version/);
    expect(broken.files.find((f: { path: string }) => f.path === 'keep/flaky.json').stale).toBe(true);
    expect(await rows(port, 'SELECT id FROM keep ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);

    await writeAtomic(path.join(stack.dataDir, 'keep', 'flaky.json'), '[{"id": 4, "name": "d"}]');
    await waitFor('fixed', async () => (await info('keep')).errors.length === 0);
    expect(await rows(port, 'SELECT id FROM keep ORDER BY id')).toEqual([{ id: 1 }, { id: 4 }]);
  });

  it('widens types across files and reports text conflicts; a bad value past the type sample is kept, not nulled', async () => {
    await mkdir(path.join(stack.dataDir, 'mixed'));
    const many = Array.from({ length: 30_000 }, (_, i) => `${i},${i}`);
    many.push('30000,not-a-number');
    await writeAtomic(path.join(stack.dataDir, 'mixed', 'late.csv'), `id,qty\n${many.join('\n')}\n`);
    await writeAtomic(path.join(stack.dataDir, 'mixed', 'ints.csv'), 'id,qty,price\n-1,5,2\n');
    await writeAtomic(path.join(stack.dataDir, 'mixed', 'floats.ndjson'), '{"id": -2, "price": 2.5}\n');
    await waitFor('mixed served', async () => (await rows(port, 'SELECT count(*) AS n FROM mixed'))[0]?.n === 30_003);
    const m = await info('mixed');
    expect(m.errors).toEqual([]);
    expect(m.columns).toEqual([
      { name: 'id', type: 'BIGINT', files: ['mixed/floats.ndjson', 'mixed/ints.csv', 'mixed/late.csv'] },
      { name: 'price', type: 'DOUBLE', files: ['mixed/floats.ndjson', 'mixed/ints.csv'] },
      { name: 'qty', type: 'VARCHAR', files: ['mixed/ints.csv', 'mixed/late.csv'] },
    ]);
    expect(m.conflicts.map((c: { column: string; kind: string }) => [c.column, c.kind])).toEqual([
      ['price', 'widened'],
      ['qty', 'text'],
    ]);
    expect(await rows(port, "SELECT count(*) AS n FROM mixed WHERE qty IS NULL")).toEqual([{ n: 1 }]);
    expect(await rows(port, "SELECT qty FROM mixed WHERE id = 30000")).toEqual([{ qty: 'not-a-number' }]);
  });

  it('types a CSV column from every row: a value past the first 20,480 that only a wider type holds is kept as written', async () => {
    // DuckDB's scanner would read 1.5 into a column sniffed from the first rows as BIGINT as 2, a timestamp
    // into a DATE column as its date, and 007 into BIGINT as 7 — silently.
    await mkdir(path.join(stack.dataDir, 'lenient'));
    const lines = Array.from({ length: 30_000 }, (_, i) => `${i},2024-01-01,${i + 1}`);
    lines.push('1.5,2024-01-01 10:30:00,007');
    await writeAtomic(path.join(stack.dataDir, 'lenient', 'late.csv'), `n,d,code\n${lines.join('\n')}\n`);
    await waitFor('lenient served', async () => (await rows(port, 'SELECT count(*) AS n FROM lenient'))[0]?.n === 30_001);
    expect((await info('lenient')).columns.map((c: { name: string; type: string }) => [c.name, c.type])).toEqual([
      ['n', 'DOUBLE'],
      ['d', 'TIMESTAMP'],
      ['code', 'VARCHAR'],
    ]);
    expect(await rows(port, "SELECT n, strftime(d, '%Y-%m-%d %H:%M') AS d, code FROM lenient WHERE code = '007'")).toEqual([
      { n: 1.5, d: '2024-01-01 10:30', code: '007' },
    ]);
  });

  it('a JSON column of mostly strings and a few numbers is text: queried by value, listed in conflicts', async () => {
    const movies = [
      { Title: 'The Matrix', Year: 1999 },
      { Title: 1776, Year: 1972 },
      { Title: 'Heat', Year: 1995 },
      { Title: 9, Year: 2009 },
      { Title: null, Year: 2001 },
      { Title: true, Year: 2002 },
    ];
    await writeAtomic(path.join(stack.dataDir, 'movies.json'), JSON.stringify(movies));
    await waitFor('movies served', async () => (await rows(port, 'SELECT count(*) AS n FROM movies'))[0]?.n === 6);
    const m = await info('movies');
    expect(m.columns.find((c: { name: string }) => c.name === 'Title').type).toBe('VARCHAR');
    expect(await rows(port, `SELECT "Year" FROM movies WHERE "Title" = 'The Matrix'`)).toEqual([{ Year: 1999 }]);
    expect(await rows(port, `SELECT "Title" FROM movies WHERE "Year" IN (1972, 2009, 2002) ORDER BY "Year"`)).toEqual([{ Title: '1776' }, { Title: 'true' }, { Title: '9' }]);
    expect(await rows(port, `SELECT count(*) AS n FROM movies WHERE "Title" IS NULL`)).toEqual([{ n: 1 }]);
    const conflict = m.conflicts.find((c: { column: string }) => c.column === 'Title');
    expect(conflict).toMatchObject({ kind: 'text', resolved: 'VARCHAR' });
    expect(conflict.types.map((t: { type: string }) => t.type).sort()).toEqual(['BOOLEAN', 'UBIGINT', 'VARCHAR']);
  });

  it('reads Arrow IPC files, file and stream form (.arrow, .feather, .arrows): 200k rows and every common type', async () => {
    const n = 200_000;
    const ids = Int32Array.from({ length: n }, (_, i) => i);
    const dict = A.vectorFromArray(Array.from({ length: n }, (_, i) => ['red', 'green', 'blue'][i % 3]!), new A.Dictionary(new A.Utf8(), new A.Int32()));
    const table = new A.Table({
      id: A.makeVector(ids),
      big: A.vectorFromArray(Array.from({ length: n }, (_, i) => BigInt(i) * 1_000_000_007n), new A.Int64()),
      score: A.makeVector(Float64Array.from({ length: n }, (_, i) => i / 4)),
      label: A.vectorFromArray(Array.from({ length: n }, (_, i) => (i % 1000 === 0 ? null : `row ${i}`)), new A.Utf8()),
      color: dict,
      flag: A.vectorFromArray(Array.from({ length: n }, (_, i) => i % 2 === 0), new A.Bool()),
      day: A.vectorFromArray(Array.from({ length: n }, (_, i) => new Date(Date.UTC(2024, 0, 1) + (i % 366) * 86_400_000)), new A.DateDay()),
      ts: A.vectorFromArray(Array.from({ length: n }, (_, i) => Date.UTC(2024, 0, 1) + i * 1000), new A.TimestampMillisecond()),
      tags: A.vectorFromArray(Array.from({ length: n }, (_, i) => [i % 5, i % 7]), new A.List(new A.Field('item', new A.Int32()))),
    });
    await mkdir(path.join(stack.dataDir, 'arrowed'));
    await writeAtomic(path.join(stack.dataDir, 'arrowed', 'a.arrow'), Buffer.from(A.tableToIPC(table, 'file')));
    const small = A.tableFromArrays({ id: Int32Array.from([-1, -2]), score: Float64Array.from([0.5, 1.5]) });
    await writeAtomic(path.join(stack.dataDir, 'arrowed', 'b.feather'), Buffer.from(A.tableToIPC(small, 'file')));
    await writeAtomic(path.join(stack.dataDir, 'arrowed', 'c.arrows'), Buffer.from(A.tableToIPC(small, 'stream')));
    await waitFor('arrow served', async () => (await rows(port, 'SELECT count(*) AS n FROM arrowed'))[0]?.n === n + 4, 60_000);
    const m = await info('arrowed');
    expect(m.errors).toEqual([]);
    expect(Object.fromEntries(m.columns.map((c: { name: string; type: string }) => [c.name, c.type]))).toEqual({
      id: 'INTEGER', big: 'BIGINT', score: 'DOUBLE', label: 'VARCHAR', color: 'VARCHAR', flag: 'BOOLEAN', day: 'DATE', ts: 'TIMESTAMP_MS', tags: 'JSON',
    });
    expect(await rows(port, 'SELECT sum(id)::BIGINT AS s, count(label) AS labels, max(big)::VARCHAR AS big FROM arrowed WHERE id >= 0')).toEqual([
      { s: 19_999_900_000, labels: n - 200, big: String(199_999n * 1_000_000_007n) },
    ]);
    expect(await rows(port, `SELECT color, flag, strftime(day, '%Y-%m-%d') AS day, strftime(ts, '%H:%M:%S') AS ts, tags::VARCHAR AS tags FROM arrowed WHERE id = 7`)).toEqual([
      { color: 'green', flag: false, day: '2024-01-08', ts: '00:00:07', tags: '[2,0]' },
    ]);
    expect(await rows(port, 'SELECT count(*) AS n FROM arrowed WHERE id < 0')).toEqual([{ n: 4 }]);
  });

  it('names the rows that break a CSV, and reads it with the options of _table.yaml: skipped rows listed by line', async () => {
    const lines = ['id,name,score', ...Array.from({ length: 3000 }, (_, i) => `${i},n${i},${i * 2}`)];
    lines[1501] = '1500,n1500,3000,extra';
    await mkdir(path.join(stack.dataDir, 'ragged'));
    await writeAtomic(path.join(stack.dataDir, 'ragged', 'r.csv'), `${lines.join('\n')}\n`);
    await waitFor('ragged reported', async () => (await info('ragged').catch(() => null))?.errors?.length === 1);
    const refused = await info('ragged');
    expect(refused.errors[0].message).toMatch(/^1 row\(s\) do not fit the file's columns \(line 1502: Expected Number of Columns: 3 Found: 4\)/);
    expect(refused.errors[0].message).toMatch(/set ignore_errors: true .* in ragged\/_table\.yaml/);

    await writeAtomic(path.join(stack.dataDir, 'ragged', '_table.yaml'), 'ignore_errors: true\n');
    await waitFor('ragged read', async () => (await rows(port, 'SELECT count(*) AS n FROM ragged'))[0]?.n === 2999);
    const read = await info('ragged');
    expect(read.errors).toHaveLength(1);
    expect(read.errors[0]).toMatchObject({ file: 'ragged/r.csv', skipped: { rows: 1, lines: [{ line: 1502 }] } });
    expect(read.errors[0].message).toMatch(/^1 row\(s\) skipped \(ignore_errors in _table\.yaml\): line 1502: Expected Number of Columns: 3 Found: 4/);
    expect(read.files[0]).toMatchObject({ path: 'ragged/r.csv', rows: 2999, skipped: 1 });

    // A headerless file: names from the options, the first line is data; changing the options rebuilds it.
    await mkdir(path.join(stack.dataDir, 'headless'));
    await writeAtomic(path.join(stack.dataDir, 'headless', '_table.yaml'), 'header: false\nnames: [id, city]\n');
    await writeAtomic(path.join(stack.dataDir, 'headless', 'h.csv'), '1,Oslo\n2,Lima\n');
    await waitFor('headless served', async () => (await rows(port, 'SELECT count(*) AS n FROM headless'))[0]?.n === 2);
    expect(await rows(port, 'SELECT id, city FROM headless ORDER BY id')).toEqual([
      { id: 1, city: 'Oslo' },
      { id: 2, city: 'Lima' },
    ]);
    await writeAtomic(path.join(stack.dataDir, 'headless', '_table.yaml'), 'csv:\n  header: false\n  names: [id, city]\n  types: {id: VARCHAR}\n');
    await waitFor('options applied', async () => (await info('headless')).columns[0].type === 'VARCHAR');

    // Unknown keys are refused, naming the table and the key; the rows read before keep serving.
    await writeAtomic(path.join(stack.dataDir, 'headless', '_table.yaml'), 'header: false\nnames: [id, city]\nread_path: /etc/passwd\n');
    await waitFor('bad options reported', async () => (await info('headless')).errors.length === 1);
    const bad = await info('headless');
    expect(bad.errors[0].message).toMatch(/headless\/_table\.yaml: unknown key "read_path" for table headless \(allowed: header, names, delim/);
    expect(await rows(port, 'SELECT count(*) AS n FROM headless')).toEqual([{ n: 2 }]);
  });

  it('coalesces a burst of changes into a few rebuilds and ends equal to the folder', async () => {
    await mkdir(path.join(stack.dataDir, 'burst'));
    await writeAtomic(path.join(stack.dataDir, 'burst', 'f0.csv'), 'n\n0\n');
    await waitFor('burst served', async () => (await rows(port, 'SELECT count(*) AS n FROM burst'))[0]?.n === 1);
    const v0 = (await info('burst')).version;
    for (let i = 1; i <= 100; i++) await writeAtomic(path.join(stack.dataDir, 'burst', `f${i}.csv`), `n\n${i}\n`);
    await waitFor('burst complete', async () => (await rows(port, 'SELECT count(*) AS n, sum(n) AS s FROM burst'))[0]?.s === 5050, 60_000);
    const published = (await info('burst')).version - v0;
    expect(published).toBeGreaterThanOrEqual(1);
    expect(published).toBeLessThan(25);
  }, 90_000);
});
