import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, ROOT, TEST_REDIS_URL, deletePrefix, removeDir, tempDir, uniquePrefix, waitFor, writeAtomic, flashduckEnv } from '../helpers.js';

/** Reads a Parquet file with hyparquet: an independent reader (pure JavaScript, not DuckDB). */
async function readIndependently(file: string) {
  const buf = await readFile(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const meta = parquetMetadata(ab);
  const rows = (await parquetReadObjects({ file: ab, compressors })) as Record<string, unknown>[];
  return {
    rows,
    schema: meta.schema.slice(1).map((s) => ({ name: s.name, type: s.type, converted: s.converted_type })),
    codec: meta.row_groups[0]?.columns[0]?.meta_data?.codec,
  };
}

async function duckdb<T>(fn: (run: (sql: string) => Promise<Record<string, unknown>[]>) => Promise<T>): Promise<T> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    await conn.run(`SET TimeZone='UTC'`);
    return await fn(async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJS());
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** Monitor, cacher and exporter as processes on folders and a key prefix of their own, with `settings` added. */
function exportStack(name: string, settings: Record<string, string>) {
  const stack = { prefix: uniquePrefix(name), dataDir: '', work: '', exportDir: '', env: {} as Record<string, string>, procs: [] as AppProcess[], exporter: null as AppProcess | null };
  beforeAll(async () => {
    stack.dataDir = await tempDir(`${name}-data`);
    stack.work = await tempDir(`${name}-work`);
    stack.exportDir = path.join(stack.work, 'exports');
    stack.env = { ...flashduckEnv(stack.prefix, stack.dataDir, stack.work), MONITOR_POLL_MS: '100', MONITOR_SETTLE_MS: '50', EXPORTER_RECONCILE_MS: '500', ...settings };
    stack.procs.push(AppProcess.start('monitor', stack.env), AppProcess.start('cacher', stack.env));
    stack.exporter = AppProcess.start('exporter', stack.env);
    stack.procs.push(stack.exporter);
    await Promise.all(stack.procs.map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|exporter started)"/)));
  });
  afterAll(async () => {
    await Promise.all(stack.procs.map((p) => p.kill('SIGTERM')));
    await deletePrefix(TEST_REDIS_URL, stack.prefix);
    await removeDir(stack.dataDir);
    await removeDir(stack.work);
  });
  return stack;
}

describe('exporter end to end (separate processes)', () => {
  const stack = exportStack('export', { EXPORTER_DEBOUNCE_MS: '1500', EXPORTER_LEASE_MS: '2000' });
  const prefix = stack.prefix;
  let dataDir: string;
  let exportDir: string;
  let work: string;
  let env: Record<string, string>;
  const procs = stack.procs;
  let exporter: AppProcess;
  const exportsOf = (p: AppProcess, table: string) => p.logs.filter((l) => l.includes('"msg":"export written"') && l.includes(`"table":"${table}"`));
  const manifest = async (table: string) => JSON.parse(await readFile(path.join(exportDir, `${table}.manifest.json`), 'utf8'));

  beforeAll(() => {
    ({ dataDir, exportDir, work, env } = stack);
    exporter = stack.exporter!;
  });

  it('exports a burst of five quick changes once or twice, ending equal to the folder', async () => {
    await mkdir(path.join(dataDir, 'sales'));
    await writeAtomic(path.join(dataDir, 'sales', 'a.csv'), 'id,amount,day\n1,10.5,2024-01-01\n');
    await waitFor('first export', async () => (await manifest('sales').catch(() => null))?.rows === 1, 20_000);
    const before = exportsOf(exporter, 'sales').length;
    for (let i = 2; i <= 6; i++) {
      await writeAtomic(path.join(dataDir, 'sales', `f${i}.csv`), `id,amount,day\n${i},${i * 1.5},2024-01-0${i}\n`);
      await new Promise((r) => setTimeout(r, 150));
    }
    await waitFor('final export', async () => (await manifest('sales').catch(() => null))?.rows === 6, 30_000);
    await new Promise((r) => setTimeout(r, 2500)); // anything still queued would have run by now
    const exports = exportsOf(exporter, 'sales').length - before;
    expect(exports).toBeGreaterThanOrEqual(1);
    expect(exports).toBeLessThanOrEqual(2);

    const expected = await duckdb((run) => run(`SELECT id, amount, day FROM read_csv('${path.join(dataDir, 'sales')}/*.csv', union_by_name=true) ORDER BY id`));
    const got = await duckdb((run) => run(`SELECT id, amount, day FROM read_parquet('${path.join(exportDir, 'sales.parquet')}') ORDER BY id`));
    expect(got).toEqual(expected);

    const m = await manifest('sales');
    expect(m).toMatchObject({ table: 'sales', rows: 6, compression: 'zstd' });
    expect(m.files.map((f: { path: string }) => f.path)).toEqual(['sales/a.csv', 'sales/f2.csv', 'sales/f3.csv', 'sales/f4.csv', 'sales/f5.csv', 'sales/f6.csv']);
    expect(m.columns).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'amount', type: 'DOUBLE' },
      { name: 'day', type: 'DATE' },
    ]);
    expect(new Date(m.writtenAt).getTime()).toBeGreaterThan(new Date(m.snapshotUpdatedAt).getTime() - 1);
    expect((await readdir(exportDir)).filter((f) => f.startsWith('.'))).toEqual([]);
  }, 60_000);

  it('writes a file an independent Parquet reader reads with the same rows and types', async () => {
    const { rows, schema, codec } = await readIndependently(path.join(exportDir, 'sales.parquet'));
    expect(codec).toBe('ZSTD');
    expect(schema).toEqual([
      { name: 'id', type: 'INT64', converted: 'INT_64' },
      { name: 'amount', type: 'DOUBLE', converted: undefined },
      { name: 'day', type: 'INT32', converted: 'DATE' },
    ]);
    const sorted = rows.sort((a, b) => Number(a.id) - Number(b.id));
    expect(sorted.map((r) => [Number(r.id), r.amount, (r.day as Date).toISOString().slice(0, 10)])).toEqual([
      [1, 10.5, '2024-01-01'],
      [2, 3, '2024-01-02'],
      [3, 4.5, '2024-01-03'],
      [4, 6, '2024-01-04'],
      [5, 7.5, '2024-01-05'],
      [6, 9, '2024-01-06'],
    ]);
  });

  it('after an append writes only the new file\'s rows again and fetches only its part; a new column rewrites every piece; a damaged kept piece costs one COPY', async () => {
    // Files of 40,000 rows: each part is a piece of its own (a quarter row group or more).
    const rows = (from: number, n: number, extra = false) =>
      `id,kind,amount${extra ? ',note' : ''}\n${Array.from({ length: n }, (_, i) => `${from + i},k${(from + i) % 7},${(from + i) * 0.25}${extra ? `,n${from + i}` : ''}`).join('\n')}\n`;
    await mkdir(path.join(dataDir, 'events'));
    for (let f = 0; f < 3; f++) await writeAtomic(path.join(dataDir, 'events', `e${f}.csv`), rows(f * 40_000, 40_000));
    // The exporter logs each export once its manifest is written: wait for the log line itself.
    const logOf = async (rowsNow: number) => JSON.parse(await waitFor(`export of ${rowsNow} rows`, () => exportsOf(exporter, 'events').find((l) => l.includes(`"rows":${rowsNow},`)) ?? false, 30_000));
    expect(await logOf(120_000)).toMatchObject({ pieces: 3, joined: true });

    await writeAtomic(path.join(dataDir, 'events', 'e3.csv'), rows(120_000, 40_000));
    const appended = await logOf(160_000);
    expect(appended).toMatchObject({ pieces: 4, piecesWritten: 1, joined: true });
    // It fetched the new part and nothing else.
    const redis = new Redis(TEST_REDIS_URL);
    const parts = (JSON.parse((await redis.hget(`${prefix}:{events}:meta`, 'json'))!) as { parts: { bytes: number; rows: number }[] }).parts;
    redis.disconnect();
    expect(parts.map((p) => p.bytes)).toContain(appended.fetchedBytes);
    expect(appended.fetchedBytes * 3).toBeLessThan(parts.reduce((n, p) => n + p.bytes, 0));
    const expected = await duckdb((run) => run(`SELECT id, kind, amount FROM read_csv('${path.join(dataDir, 'events')}/*.csv') ORDER BY id`));
    expect(await duckdb((run) => run(`SELECT id, kind, amount FROM read_parquet('${path.join(exportDir, 'events.parquet')}') ORDER BY id`))).toEqual(expected);
    expect((await readIndependently(path.join(exportDir, 'events.parquet'))).rows).toHaveLength(160_000);

    // A file with one more column: every earlier row now has note = NULL, so every piece is written again.
    await writeAtomic(path.join(dataDir, 'events', 'e4.csv'), rows(160_000, 40_000, true));
    expect(await logOf(200_000)).toMatchObject({ pieces: 5, piecesWritten: 5, joined: true });
    const evolved = await duckdb((run) => run(`SELECT count(*) AS n, count(note) AS notes, max(note) AS last FROM read_parquet('${path.join(exportDir, 'events.parquet')}')`));
    expect(evolved).toEqual([{ n: 200_000n, notes: 40_000n, last: 'n199999' }]);
    // The exporter keeps only the pieces of the version it last wrote (in its own folder under EXPORTER_WORK_DIR).
    const own = readdirSync(path.join(work, 'exporter'));
    expect(own).toHaveLength(1);
    const pieceDir = path.join(work, 'exporter', own[0]!, 'pieces', 'events');
    const kept = readdirSync(pieceDir);
    expect(kept.length).toBe(5);

    // A kept piece damaged on disk: the next export is written by one COPY instead, with every row, and the pieces
    // are written again for the one after it.
    await writeFile(path.join(pieceDir, kept[0]!), 'not parquet');
    await writeAtomic(path.join(dataDir, 'events', 'e5.csv'), rows(200_000, 40_000, true));
    expect(await logOf(240_000)).toMatchObject({ joined: false });
    expect(await duckdb((run) => run(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('${path.join(exportDir, 'events.parquet')}')`))).toEqual([{ n: 240_000n, ids: 240_000n }]);
    await writeAtomic(path.join(dataDir, 'events', 'e6.csv'), rows(240_000, 40_000, true));
    expect(await logOf(280_000)).toMatchObject({ pieces: 7, piecesWritten: 7, joined: true });
  }, 90_000);

  it('keeps the previous export intact when killed mid-write, and catches up after a restart', async () => {
    await mkdir(path.join(dataDir, 'big'));
    await writeAtomic(path.join(dataDir, 'big', 'small.csv'), 'id,v\n1,a\n');
    await waitFor('small export', async () => (await manifest('big').catch(() => null))?.rows === 1, 20_000);
    const big = path.join(work, 'big.parquet');
    await duckdb((run) => run(`COPY (SELECT range AS id, md5(range::VARCHAR) AS v, random() AS x, range % 97 AS g FROM range(2000000)) TO '${big}' (FORMAT parquet)`));
    await copyFile(big, path.join(dataDir, 'big', '.big.tmp'));
    await rename(path.join(dataDir, 'big', '.big.tmp'), path.join(dataDir, 'big', 'big.parquet'));

    await waitFor('export of the big version started', async () => (await readdir(exportDir)).some((f) => f.startsWith('.big.parquet.tmp-')), 60_000, 5);
    await exporter.kill('SIGKILL');
    const previous = await readIndependently(path.join(exportDir, 'big.parquet'));
    expect(previous.rows).toEqual([{ id: 1n, v: 'a' }]);
    expect((await manifest('big')).rows).toBe(1);

    exporter = AppProcess.start('exporter', env);
    procs.push(exporter);
    await waitFor('export caught up', async () => (await manifest('big').catch(() => null))?.rows === 2_000_001, 90_000, 200);
    const counted = await duckdb((run) => run(`SELECT count(*) AS n FROM read_parquet('${path.join(exportDir, 'big.parquet')}')`));
    expect(Number(counted[0]!.n)).toBe(2_000_001);
    await waitFor('no temp file left', async () => (await readdir(exportDir)).filter((f) => f.startsWith('.')).length === 0, 10_000);
  }, 150_000);

  it('says why a table cannot be exported, in flashduck status, and clears it once the export is written', async () => {
    // A directory where the export file must go: every attempt fails until it is removed.
    await mkdir(path.join(exportDir, 'blocked.parquet', 'in-the-way'), { recursive: true });
    await writeAtomic(path.join(dataDir, 'blocked.csv'), 'k\n1\n');
    const status = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'apps/cli/dist/main.js'), 'status', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
    const failing = await waitFor('the failure recorded', () => {
      const f = (JSON.parse(status('--json').stdout) as { exportFailures: Record<string, { version: number; message: string }> }).exportFailures.blocked;
      return f ?? false;
    });
    expect(failing.version).toBe(1);
    expect(failing.message).toMatch(/blocked\.parquet/);
    expect(status().stdout).toMatch(/Export failures \(the previous export stays in place; retried\):\n {2}blocked: v1: .*blocked\.parquet/);
    await rm(path.join(exportDir, 'blocked.parquet'), { recursive: true });
    await waitFor('blocked exported', async () => (await manifest('blocked').catch(() => null))?.rows === 1, 30_000);
    const after = JSON.parse(status('--json').stdout) as { exports: Record<string, { version: number }>; exportFailures: Record<string, unknown> };
    expect(after.exports.blocked?.version).toBe(1);
    expect(after.exportFailures).toEqual({});
    expect(status().stdout).not.toMatch(/Export failures/);
  });

  it('removes the export of a table whose files are all deleted', async () => {
    await writeAtomic(path.join(dataDir, 'gone.csv'), 'k\n1\n');
    await waitFor('gone exported', async () => (await stat(path.join(exportDir, 'gone.parquet')).catch(() => null)) !== null, 20_000);
    await rm(path.join(dataDir, 'gone.csv'));
    await waitFor('gone removed', async () => !(await readdir(exportDir)).some((f) => f.startsWith('gone.')), 20_000);
  });

  it('exports on demand with every compression; an unknown one is a config error naming the variable', async () => {
    const cli = path.join(ROOT, 'apps/cli/dist/main.js');
    const codecs: Record<string, string> = { zstd: 'ZSTD', snappy: 'SNAPPY', gzip: 'GZIP', uncompressed: 'UNCOMPRESSED' };
    for (const [compression, codec] of Object.entries(codecs)) {
      const out = path.join(work, `sales-${compression}.parquet`);
      const r = spawnSync(process.execPath, [cli, 'export', 'sales', '--out', out, '--compression', compression], { env: { ...process.env, ...env }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const read = await readIndependently(out);
      expect(read.codec).toBe(codec);
      expect(read.rows).toHaveLength(6);
    }
    const bad = spawnSync(process.execPath, [cli, 'exporter'], { env: { ...process.env, ...env, EXPORTER_COMPRESSION: 'lz5' }, encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/EXPORTER_COMPRESSION: "lz5" is not one of zstd, snappy, gzip, uncompressed/);
    const status = JSON.parse(spawnSync(process.execPath, [cli, 'status', '--json'], { env: { ...process.env, ...env }, encoding: 'utf8' }).stdout);
    expect(status.exports.sales.version).toBeGreaterThan(0);
  }, 60_000);

  it('refuses to start with the export dir inside the data dir', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'apps/exporter/dist/main.js')], {
      env: { ...process.env, ...env, FLASHDUCK_EXPORT_DIR: path.join(dataDir, 'exports') },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/FLASHDUCK_EXPORT_DIR: .* is inside the data dir/);
  });
});

interface MergedMeta {
  version: number;
  rows: number;
  cause?: string;
  parts: { id: string; bytes: number; rows: number; members: number; exclude?: number[] }[];
  merged?: { part: string; inputs: { id: string }[] };
}

/** Rows of an `events` file: `n` rows from id `from`. */
const eventRows = (from: number, n: number) => `id,kind,amount\n${Array.from({ length: n }, (_, i) => `${from + i},k${(from + i) % 7},${(from + i) * 0.25}`).join('\n')}\n`;

describe('export after merges (separate processes)', () => {
  const stack = exportStack('export-merge', {
    EXPORTER_DEBOUNCE_MS: '300',
    CACHER_RECONCILE_MS: '300',
    // More than four parts are merged.
    CACHER_MERGE_MAX_PARTS: '4',
  });
  const redis = new Redis(TEST_REDIS_URL);
  afterAll(() => redis.disconnect());
  const meta = async (): Promise<MergedMeta> => JSON.parse((await redis.hget(`${stack.prefix}:{events}:meta`, 'json'))!) as MergedMeta;
  const exports = () => stack.exporter!.logs.filter((l) => l.includes('"msg":"export written"')).map((l) => JSON.parse(l) as Record<string, number>);
  /** The export of version `version` of the table, once written. */
  const exportOf = (version: number) => waitFor(`the export of version ${version}`, () => exports().find((e) => e.version === version) ?? false, 30_000);
  /** The folder's rows against the exported file's, in id order. */
  const expectExportEqualsFolder = async () => {
    const folder = await duckdb((run) => run(`SELECT id, kind, amount FROM read_csv('${path.join(stack.dataDir, 'events')}/*.csv') ORDER BY id`));
    const exported = await duckdb((run) => run(`SELECT id, kind, amount FROM read_parquet('${path.join(stack.exportDir, 'events.parquet')}') ORDER BY id`));
    expect(exported.length).toBe(folder.length);
    expect(exported).toEqual(folder);
  };
  /** Waits until the table's current version is a merge serving `n` rows in `parts` part(s). */
  const mergedVersion = (n: number, parts: number) =>
    waitFor(`a merge down to ${parts} part(s) of ${n} rows`, async () => {
      const m = await meta();
      return m.cause === 'merge' && m.parts.length === parts && m.rows === n ? m : false;
    }, 30_000);

  it('makes a merged part\'s piece from the pieces kept for the parts it merged: no merged part fetched, only new rows encoded', async () => {
    // Files of 40,000 rows: each part is a piece of its own (a quarter row group or more).
    await mkdir(path.join(stack.dataDir, 'events'));
    for (let f = 0; f < 4; f++) await writeAtomic(path.join(stack.dataDir, 'events', `e${f}.csv`), eventRows(f * 40_000, 40_000));
    const first = await waitFor('four parts', async () => ((await meta().catch(() => null))?.parts.length === 4 ? await meta() : false), 30_000);
    expect(await exportOf(first.version)).toMatchObject({ rows: 160_000, pieces: 4, piecesComposed: 0 });

    // A fifth file: five parts, merged into one. The merged part's piece is the four kept pieces joined with the
    // new file's rows (encoded once, whether or not the five-part version was exported before the merge).
    await writeAtomic(path.join(stack.dataDir, 'events', 'e4.csv'), eventRows(160_000, 40_000));
    const merged = await mergedVersion(200_000, 1);
    expect(merged.merged?.part).toBe(merged.parts[0]!.id);
    expect(merged.merged?.inputs).toHaveLength(5);
    const composed = await exportOf(merged.version);
    expect(composed).toMatchObject({ rows: 200_000, pieces: 1, piecesComposed: 1, joined: true });
    // The merged part was never fetched: at most the new file's part (a fifth of its bytes) was.
    expect(composed.fetchedBytes!).toBeLessThan(merged.parts[0]!.bytes / 2);
    await expectExportEqualsFolder();

    // The composed piece is kept: an append writes one piece, for the new file alone.
    await writeAtomic(path.join(stack.dataDir, 'events', 'e5.csv'), eventRows(200_000, 40_000));
    const appended = await waitFor('the append', async () => ((await meta()).parts.length === 2 ? await meta() : false), 30_000);
    expect(await exportOf(appended.version)).toMatchObject({ rows: 240_000, pieces: 2, piecesWritten: 1, piecesComposed: 0 });
    await expectExportEqualsFolder();

    // A file of the merged part changes: the merged part now serves fewer rows, so no kept piece holds exactly those
    // and its piece is encoded again; the changed file's 20,000 rows are a small piece of their own.
    await writeAtomic(path.join(stack.dataDir, 'events', 'e0.csv'), eventRows(0, 20_000));
    const changed = await waitFor('the change', async () => {
      const m = await meta();
      return m.parts.length === 3 && m.parts.some((p) => p.exclude?.length) ? m : false;
    }, 30_000);
    expect(await exportOf(changed.version)).toMatchObject({ rows: 220_000, pieces: 3, piecesComposed: 0 });
    await expectExportEqualsFolder();

    // Two more files: five parts, merged into one, among them the merged part with its excluded member (its kept
    // piece has exactly its rows). Only the new files' rows may be encoded.
    await writeAtomic(path.join(stack.dataDir, 'events', 'e6.csv'), eventRows(240_000, 40_000));
    await writeAtomic(path.join(stack.dataDir, 'events', 'e7.csv'), eventRows(280_000, 40_000));
    const again = await mergedVersion(300_000, 1);
    const recomposed = await exportOf(again.version);
    expect(recomposed).toMatchObject({ rows: 300_000, pieces: 1, piecesComposed: 1 });
    expect(recomposed.fetchedBytes!).toBeLessThan(again.parts[0]!.bytes / 2);
    await expectExportEqualsFolder();
  }, 120_000);
});
