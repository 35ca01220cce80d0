import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TablePart } from '@flashduck/core';
import { composePiece, planLanes, planPieces } from './export-table.js';
import { ParquetFormatError, concatParquet } from './parquet-concat.js';

// Rows of every kind a table holds: integers, doubles, decimals, strings (dictionary pages and bloom filters),
// dates, timestamps, booleans, NULLs, lists and structs.
const ROWS = (from: number, to: number) => `SELECT i AS id, i * 1.5 AS x, (i % 1000)::DECIMAL(18,3) + 0.125 AS d, 'region_' || (i % 12) AS region,
  CASE WHEN i % 5 = 0 THEN NULL ELSE md5(i::VARCHAR) END AS code, DATE '2024-01-01' + (i % 365)::INTEGER AS day,
  TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND AS at, i % 3 = 0 AS flag, [i, i + 1] AS pair, {'k': i % 7, 's': 'v' || i} AS obj
  FROM range(${from}, ${to}) r(i)`;

describe('concatParquet', () => {
  let dir = '';
  let db: DuckDBInstance;
  let conn: DuckDBConnection;
  const q = async (sql: string) => (await conn.runAndReadAll(sql)).getRowsJS();
  const write = async (name: string, from: number, to: number, rowGroupSize = 122_880) => {
    const file = path.join(dir, name);
    await conn.run(`COPY (${ROWS(from, to)}) TO '${file}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${rowGroupSize})`);
    return file;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fd-concat-'));
    db = await DuckDBInstance.create(':memory:');
    conn = await db.connect();
  });
  afterAll(async () => {
    conn.closeSync();
    db.closeSync();
    await rm(dir, { recursive: true, force: true });
  });

  it('joins files of one schema into one file with every row, in order, readable and filterable', async () => {
    const files = [await write('a.parquet', 0, 150_000, 50_000), await write('b.parquet', 150_000, 150_007), await write('c.parquet', 150_007, 260_000)];
    const out = path.join(dir, 'joined.parquet');
    const got = await concatParquet(files, out);
    expect(got).toEqual({ rows: 260_000, rowGroups: 3 + 1 + 1 });
    // The same rows as the source, in the same order (a row number taken from each side).
    const differ = await q(`SELECT count(*) FROM (SELECT row_number() OVER () AS n, * FROM read_parquet('${out}') EXCEPT ALL SELECT row_number() OVER () AS n, * FROM (${ROWS(0, 260_000)}))`);
    expect(differ).toEqual([[0n]]);
    expect(await q(`SELECT count(*), count(code), sum(d), max(obj.s), sum(pair[2]) FROM read_parquet('${out}')`)).toEqual(
      await q(`SELECT count(*), count(code), sum(d), max(obj.s), sum(pair[2]) FROM (${ROWS(0, 260_000)})`),
    );
    // Row-group statistics and bloom filters point at the right bytes: filters on each source file's rows answer.
    expect(await q(`SELECT id FROM read_parquet('${out}') WHERE code = md5('150003')`)).toEqual([[150_003n]]);
    expect(await q(`SELECT id FROM read_parquet('${out}') WHERE id = 259_999`)).toEqual([[259_999n]]);
    expect(await q(`SELECT count(*) FROM read_parquet('${out}') WHERE region = 'region_11' AND id >= 150_000`)).toEqual(
      await q(`SELECT count(*) FROM (${ROWS(150_000, 260_000)}) WHERE region = 'region_11'`),
    );
    expect(await q(`SELECT count(DISTINCT row_group_id), sum(row_group_num_rows) FILTER (WHERE column_id = 0) FROM parquet_metadata('${out}')`)).toEqual([[5n, 260_000n]]);
    // An independent reader (pure JavaScript) reads the joined footer and every page.
    const buf = await readFile(out);
    const rows = (await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), compressors, columns: ['id', 'code', 'region'] })) as { id: bigint; code: string | null; region: string }[];
    expect(rows.length).toBe(260_000);
    for (const i of [0, 149_999, 150_003, 150_006, 259_999]) {
      expect(rows[i]).toEqual({ id: BigInt(i), code: i % 5 === 0 ? null : createHash('md5').update(String(i)).digest('hex'), region: `region_${i % 12}` });
    }
  });

  it('joins a single file into an equal file', async () => {
    const file = await write('one.parquet', 0, 1_000);
    const out = path.join(dir, 'one-joined.parquet');
    expect((await concatParquet([file], out)).rows).toBe(1_000);
    expect(await q(`SELECT count(*) FROM (FROM read_parquet('${out}') EXCEPT ALL FROM read_parquet('${file}'))`)).toEqual([[0n]]);
  });

  it('refuses files of another schema, and files that are not Parquet, naming them', async () => {
    const a = await write('s1.parquet', 0, 10);
    const other = path.join(dir, 's2.parquet');
    await conn.run(`COPY (SELECT id::VARCHAR AS id FROM range(3) r(id)) TO '${other}' (FORMAT parquet)`);
    await expect(concatParquet([a, other], path.join(dir, 'x.parquet'))).rejects.toThrow(ParquetFormatError);
    await expect(concatParquet([a, other], path.join(dir, 'x.parquet'))).rejects.toThrow(/s2\.parquet has another schema/);
    const text = path.join(dir, 'not.parquet');
    await writeFile(text, 'id,name\n1,a\n');
    await expect(concatParquet([a, text], path.join(dir, 'y.parquet'))).rejects.toThrow(/not\.parquet does not end with PAR1/);
  });
});

describe('planPieces and planLanes', () => {
  const part = (n: number, rows: number): TablePart => ({ id: n.toString(16).padStart(16, '0'), format: 'duckdb', chunks: 1, bytes: rows, rows, members: 1, columns: [{ name: 'id', type: 'BIGINT' }] });

  it('gives each part of a quarter row group or more a piece of its own and puts the smaller ones together', () => {
    const parts = [part(1, 100_000), part(2, 8), part(3, 40_000), part(4, 30_000), part(5, 12)];
    expect(planPieces(parts, 122_880).map((piece) => piece.map((p) => p.rows))).toEqual([[100_000], [40_000], [8, 30_000, 12]]);
  });

  it('writes pieces of similar size one per core, single-threaded, and a piece holding most rows with every core', () => {
    const pieces = (...rows: number[]) => rows.map((r, i) => [part(i + 1, r)]);
    expect(planLanes(pieces(...Array<number>(10).fill(100_000)), 2)).toEqual({ lanes: 2, threads: 1 });
    expect(planLanes(pieces(...Array<number>(5).fill(10_000_000)), 8)).toEqual({ lanes: 5, threads: 1 });
    expect(planLanes(pieces(30_000_000, 1_000_000, 1_000_000), 2)).toEqual({ lanes: 1, threads: 2 });
    expect(planLanes(pieces(300_000), 4)).toEqual({ lanes: 1, threads: 4 });
    expect(planLanes(pieces(4_000_000, 4_000_000), 4)).toEqual({ lanes: 2, threads: 2 });
    expect(planLanes([], 2)).toEqual({ lanes: 1, threads: 2 });
  });
});

describe('composePiece', () => {
  const part = (n: number, rows: number, exclude?: number[]): TablePart => ({
    id: n.toString(16).padStart(16, '0'),
    format: 'duckdb',
    chunks: 1,
    bytes: rows,
    rows,
    members: 1,
    columns: [{ name: 'id', type: 'BIGINT' }],
    ...(exclude ? { exclude } : {}),
  });
  const input = ({ columns: _columns, ...p }: TablePart) => p;
  const keptOf = (...ids: number[]) => (p: TablePart) => (ids.includes(Number.parseInt(p.id, 16)) && !p.exclude?.length ? `piece-${Number.parseInt(p.id, 16)}` : null);

  it('makes a merged part of its inputs\' kept pieces, through merges of merges, and encodes only the inputs none holds', () => {
    // 10 = merge of 1, 2 and 11; 11 = merge of 3 and 4.
    const merges = new Map([
      [part(10, 0).id, [part(1, 5), part(2, 5), part(11, 0)].map(input)],
      [part(11, 0).id, [part(3, 5), part(4, 5)].map(input)],
    ]);
    expect(composePiece(part(10, 20), merges, keptOf(1, 2, 3, 4))).toEqual({ kept: ['piece-1', 'piece-2', 'piece-3', 'piece-4'], encode: [] });
    const partial = composePiece(part(10, 20), merges, keptOf(1, 4));
    expect(partial?.kept).toEqual(['piece-1', 'piece-4']);
    expect(partial?.encode.map((p) => Number.parseInt(p.id, 16))).toEqual([2, 3]);
    // The inputs take the merged part's columns (the merge version lists them without).
    expect(partial?.encode[0]?.columns).toEqual(part(10, 20).columns);
    // A part two identical files share is an input once per file: its piece is joined once per file.
    const twice = new Map([[part(10, 0).id, [part(1, 5), part(1, 5), part(2, 5)].map(input)]]);
    expect(composePiece(part(10, 15), twice, keptOf(1, 2))?.kept).toEqual(['piece-1', 'piece-1', 'piece-2']);
  });

  it('encodes the part itself when nothing is kept, when rows of it are excluded, or when its merge is not known', () => {
    const merges = new Map([[part(10, 0).id, [part(1, 5), part(2, 5)].map(input)]]);
    expect(composePiece(part(10, 10), merges, keptOf())).toBeNull();
    expect(composePiece(part(10, 10, [0]), merges, keptOf(1, 2))).toBeNull();
    expect(composePiece(part(12, 10), merges, keptOf(1, 2))).toBeNull();
    // An input listed with excluded members needs a piece made with that exclusion.
    const withExcluded = new Map([[part(10, 0).id, [part(1, 5, [1]), part(2, 5)].map(input)]]);
    expect(composePiece(part(10, 10), withExcluded, keptOf(1, 2))?.encode.map((p) => p.exclude)).toEqual([[1]]);
  });
});
