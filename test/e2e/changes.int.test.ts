import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, startApps, stopApps, ROOT, flashduckEnv, freePort, rows, tempDir, uniquePrefix, waitFor, writeAtomic } from '../helpers.js';

interface VersionView {
  version: number;
  rows: number;
  parts: number;
  cause: string;
}

type Row = Record<string, unknown>;
const byIdThenChange = (a: Row, b: Row) => Number(a.id) - Number(b.id) || String(a._change).localeCompare(String(b._change));

describe('change feed between versions (separate processes)', () => {
  const prefix = uniquePrefix('changes');
  let dataDir: string;
  let work: string;
  let port: number;
  let procs: AppProcess[] = [];
  const base = () => `http://127.0.0.1:${port}`;
  const versions = async () => ((await (await fetch(`${base()}/v1/tables/t/versions`)).json()) as { versions: VersionView[] }).versions;
  const changes = async (params: Record<string, string | number>, headers: Record<string, string> = {}) =>
    fetch(`${base()}/v1/tables/t/changes?${new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString()}`, { headers });
  const changeRows = async (params: Record<string, string | number>) => {
    const res = await changes(params);
    const body = (await res.json()) as { rows: Row[]; columns: { name: string; type: string }[]; error?: unknown };
    if (res.status !== 200) throw new Error(`changes failed (${res.status}): ${JSON.stringify(body)}`);
    return { rows: body.rows.sort(byIdThenChange), columns: body.columns };
  };
  /** Waits until every merge the last change set off has published (one part left). */
  const settled = () => waitFor('merges settled', async () => ((await versions())[0]?.parts === 1 ? await versions() : undefined));

  beforeAll(async () => {
    dataDir = await tempDir('changes-data');
    work = await tempDir('changes-work');
    port = await freePort();
    await mkdir(path.join(dataDir, 't'));
    // Merges as soon as a table has two parts: every change below crosses a merge.
    const env = {
      ...flashduckEnv(prefix, dataDir, work),
      MONITOR_POLL_MS: '100',
      MONITOR_SETTLE_MS: '50',
      QUERY_API_PORT: String(port),
      QUERY_API_REFRESH_MS: '200',
      CACHER_MERGE_MAX_PARTS: '1',
    };
    procs = await startApps(['monitor', 'cacher', 'query-api'], env);
  });
  afterAll(() => stopApps(procs, prefix, dataDir, work));

  let first: VersionView;
  let merged: VersionView;

  it('an appended file shows as its rows inserted; a merge changes no row; backwards, they are deleted', async () => {
    await writeAtomic(path.join(dataDir, 't', 'a.csv'), 'id,name,score\n1,ann,10\n2,bob,20\n3,cy,30\n');
    await waitFor('a.csv served', async () => (await rows(port, 'SELECT count(*) AS n FROM t'))[0]?.n === 3);
    [first] = await versions();
    await writeAtomic(path.join(dataDir, 't', 'b.csv'), 'id,name,score\n4,dee,40\n5,eve,50\n');
    await waitFor('b.csv served', async () => (await rows(port, 'SELECT count(*) AS n FROM t'))[0]?.n === 5);
    const after = await settled();
    merged = after[0]!;
    expect(merged.cause).toBe('merge');
    const built = after.find((v) => v.cause === 'build' && v.rows === 5)!;
    expect(built.parts).toBe(2);

    const inserted = [
      { id: 4, name: 'dee', score: 40, _change: 'insert' },
      { id: 5, name: 'eve', score: 50, _change: 'insert' },
    ];
    // Into the build and into the merge that followed: the same rows.
    expect((await changeRows({ from: first.version, to: built.version })).rows).toEqual(inserted);
    expect((await changeRows({ from: first.version, to: merged.version })).rows).toEqual(inserted);
    // `to` left out: the newest version.
    expect((await changeRows({ from: first.version })).rows).toEqual(inserted);
    expect((await changeRows({ from: built.version, to: merged.version })).rows).toEqual([]);
    expect((await changeRows({ from: merged.version, to: first.version })).rows).toEqual(inserted.map((r) => ({ ...r, _change: 'delete' })));
    const { columns } = await changeRows({ from: first.version, to: merged.version });
    expect(columns.map((c) => c.name)).toEqual(['id', 'name', 'score', '_change']);
  });

  it('a rewritten file inside a merged part: its changes as a multiset; with a key, updates with the old values beside', async () => {
    // Row 1 now twice, row 2 renamed, row 3 gone; b.csv (the merged part's other member) unchanged.
    await writeAtomic(path.join(dataDir, 't', 'a.csv'), 'id,name,score\n1,ann,10\n1,ann,10\n2,bo,21\n');
    await waitFor('a.csv rewritten', async () => (await rows(port, `SELECT count(*) AS n FROM t WHERE name = 'bo'`))[0]?.n === 1);
    const after = await settled();
    const newer = after.filter((v) => v.version > merged.version);
    expect(newer.length).toBeGreaterThanOrEqual(2); // the build (merged part less one member + a new part), then a merge
    for (const to of newer) {
      expect((await changeRows({ from: merged.version, to: to.version })).rows).toEqual([
        { id: 1, name: 'ann', score: 10, _change: 'insert' },
        { id: 2, name: 'bob', score: 20, _change: 'delete' },
        { id: 2, name: 'bo', score: 21, _change: 'insert' },
        { id: 3, name: 'cy', score: 30, _change: 'delete' },
      ]);
      expect((await changeRows({ from: merged.version, to: to.version, key: 'ID' })).rows).toEqual([
        { id: 1, name: 'ann', score: 10, _change: 'insert', _old_name: null, _old_score: null },
        { id: 2, name: 'bo', score: 21, _change: 'update', _old_name: 'bob', _old_score: 20 },
        { id: 3, name: 'cy', score: 30, _change: 'delete', _old_name: null, _old_score: null },
      ]);
    }
  });

  it('a file with a new column: the feed carries it, with the older rows typed alike', async () => {
    const [before] = await versions();
    await writeAtomic(path.join(dataDir, 't', 'c.csv'), 'id,name,score,tag\n6,fay,60.5,new\n');
    await waitFor('c.csv served', async () => (await rows(port, 'SELECT count(*) AS n FROM t'))[0]?.n === 6);
    const { rows: got, columns } = await changeRows({ from: before!.version });
    expect(columns).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'name', type: 'VARCHAR' },
      { name: 'score', type: 'DOUBLE' },
      { name: 'tag', type: 'VARCHAR' },
      { name: '_change', type: 'VARCHAR' },
    ]);
    expect(got).toEqual([{ id: 6, name: 'fay', score: 60.5, tag: 'new', _change: 'insert' }]);
  });

  it('answers in csv, ndjson, arrow and parquet, and a repeated request is 304 by its ETag', async () => {
    const range = { from: first.version, to: merged.version };
    expect(await (await changes({ ...range, format: 'csv' })).text()).toMatch(/^id,name,score,_change\n(4,dee,40,insert\n5,eve,50,insert\n|5,eve,50,insert\n4,dee,40,insert\n)$/);
    const nd = (await (await changes({ ...range, format: 'ndjson' })).text()).trim().split('\n').map((l) => JSON.parse(l) as Row);
    expect(nd.sort(byIdThenChange)).toEqual([
      { id: 4, name: 'dee', score: 40, _change: 'insert' },
      { id: 5, name: 'eve', score: 50, _change: 'insert' },
    ]);
    const arrow = tableFromIPC(new Uint8Array(await (await changes({ ...range, format: 'arrow', key: 'id' })).arrayBuffer()));
    expect(arrow.schema.fields.map((f) => f.name)).toEqual(['id', 'name', 'score', '_change', '_old_name', '_old_score']);
    expect(arrow.toArray().map((r) => [Number(r.id), r._change])).toEqual([
      [4, 'insert'],
      [5, 'insert'],
    ]);
    const parquet = Buffer.from(await (await changes({ ...range, format: 'parquet' })).arrayBuffer());
    const file = path.join(work, 'changes.parquet');
    await writeFile(file, parquet);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const fromParquet = (await conn.runAndReadAll(`SELECT id::INTEGER AS id, _change FROM read_parquet('${file}') ORDER BY id`)).getRowObjectsJS();
    conn.closeSync();
    db.closeSync();
    expect(fromParquet).toEqual([
      { id: 4, _change: 'insert' },
      { id: 5, _change: 'insert' },
    ]);

    const once = await changes(range);
    const etag = once.headers.get('etag')!;
    expect(etag).toBeTruthy();
    expect((await changes(range, { 'if-none-match': etag })).status).toBe(304);
    const again = await changes(range);
    expect(again.headers.get('x-flashduck-cache')).toBe('hit');
    expect(again.headers.get('etag')).toBe(etag);
  });

  it('refuses what it cannot answer, naming the parameter, column or version', async () => {
    const error = async (params: Record<string, string | number>, table = 't') => {
      const res = await fetch(`${base()}/v1/tables/${table}/changes?${new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString()}`);
      return { status: res.status, message: ((await res.json()) as { error: { message: string } }).error.message };
    };
    expect(await error({})).toEqual({ status: 400, message: expect.stringMatching(/"from" is required/) });
    expect(await error({ from: 'x' })).toEqual({ status: 400, message: expect.stringMatching(/"from" must be a version number/) });
    expect(await error({ from: first.version, key: 'nope' })).toEqual({ status: 400, message: expect.stringMatching(/table "t" has no column "nope" \(its columns: id, name, score, tag\)/) });
    expect(await error({ from: first.version, since: 1 })).toEqual({ status: 400, message: expect.stringMatching(/unknown parameter "since"/) });
    expect(await error({ from: 9999 })).toEqual({ status: 410, message: expect.stringMatching(/version 9999 of table "t" is not retained/) });
    expect((await error({ from: 1 }, 'nosuch')).status).toBe(404);
  });

  it('flashduck diff prints the change rows', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'apps/cli/dist/main.js'), ...args], { encoding: 'utf8', env: { ...process.env, FLASHDUCK_API_URL: base() } });
    const csv = cli(['diff', 't', String(first.version), String(merged.version), '--key', 'id', '--format', 'csv']);
    expect(csv.status).toBe(0);
    expect(csv.stdout).toBe('id,name,score,_change,_old_name,_old_score\n4,dee,40,insert,,\n5,eve,50,insert,,\n');
    const table = cli(['diff', 't', String(first.version), String(merged.version)]);
    expect(table.status).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^id\s+│ name\s+│ score\s+│ _change/);
    expect(table.stderr).toMatch(/^2 rows/);
    const bad = cli(['diff', 't', 'latest']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/<from> must be a version number/);
  });
});
