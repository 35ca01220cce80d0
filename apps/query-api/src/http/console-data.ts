import path from 'node:path';
import {
  AppError,
  errorMessage,
  fileKindOf,
  quoteIdent,
  readExportState,
  readFolderRecord,
  readIgnoredFiles,
  readHeartbeats,
  readWriteStreams,
  within,
  type Keys,
  type RedisClient,
  type TableMeta,
} from '@flashduck/core';
import { closeDuckDB, fileReaderSql, openDuckDB } from '@flashduck/core/duckdb';
import type { Generation } from '../snapshots/generation.js';
import { runQuery, type QueryLimits } from '../query/run-query.js';
import { tableDetail } from './tables-view.js';

/** How long the status waits for Redis before it answers with what this replica serves alone. */
const STATUS_REDIS_MS = 2_000;

/**
 * Everything the console's status, cache and exports views show, in one answer. The tables are what this
 * replica serves (no Redis needed); components, writes, exports and the folder record come from Redis
 * within {@link STATUS_REDIS_MS}: while Redis is unreachable `redis.reachable` is false, with the reason.
 */
export async function consoleStatus(redis: RedisClient, keys: Keys, generation: Generation | null, servedBy: string) {
  const tables = generation ? [...generation.tables.values()].map((t) => t.meta) : [];
  const fromRedis = Promise.all([
    readHeartbeats(redis, keys),
    readWriteStreams(redis, keys),
    Promise.all(tables.map(async (m) => ({ table: m.table, ...(await readExportState(redis, keys, m.table)) }))),
    readFolderRecord(redis, keys),
    readIgnoredFiles(redis, keys),
  ]);
  let answer: Awaited<typeof fromRedis> | null = null;
  let unreachable: string | null = null;
  try {
    answer = await within(fromRedis, STATUS_REDIS_MS);
    if (!answer) unreachable = `no answer from Redis within ${STATUS_REDIS_MS} ms`;
  } catch (err) {
    unreachable = errorMessage(err);
  }
  fromRedis.catch(() => undefined); // settles after the deadline, or not at all: nobody waits for it
  const [components, writes, exportStates, record, ignored] = answer ?? [[], [], [], null, null];
  return {
    redis: unreachable
      ? { reachable: false, error: unreachable, note: 'serving the table versions this replica holds; status of components, writes and exports is unknown until Redis answers' }
      : { reachable: true, folderRecord: record?.state },
    components: components.map((c) => ({ ...c, startedAt: new Date(c.startedAt).toISOString(), lastLoopAt: new Date(c.lastLoopAt).toISOString() })),
    tables: tables.map(tableDetail).sort((a, b) => a.name.localeCompare(b.name)),
    writes,
    exports: exportStates.flatMap(({ table, written: w }) => (w ? [{ table, version: w.version, rows: w.rows, bytes: w.bytes, exportedAt: new Date(w.at).toISOString(), ms: w.ms }] : [])),
    /** Tables whose latest export failed (their previous export, if any, stays in place), with the reason. */
    exportFailures: exportStates.flatMap(({ table, failing: f }) => (f ? [{ table, version: f.version, message: f.message, failedAt: new Date(f.at).toISOString() }] : [])),
    /** Files in the data folder with an extension FlashDuck does not read. */
    ignored: { files: ignored?.files ?? [], total: ignored?.total ?? 0 },
    servedGeneration: generation?.id ?? null,
    /** The query-api instance that answered (the console marks it among the components). */
    servedBy,
  };
}

/** The fixed queries the "cache vs. files" comparison runs (never user SQL). */
function comparisonQueries(meta: TableMeta): { name: string; sql: (source: string) => string }[] {
  const text = meta.columns.find((c) => c.type === 'VARCHAR') ?? meta.columns[0]!;
  const number = meta.columns.find((c) => /INT|DOUBLE|FLOAT|DECIMAL/.test(c.type));
  return [
    { name: 'count(*)', sql: (src) => `SELECT count(*) AS n FROM ${src}` },
    {
      name: `GROUP BY ${text.name}`,
      sql: (src) =>
        `SELECT ${quoteIdent(text.name)}, count(*) AS n${number ? `, avg(${quoteIdent(number.name)}) AS avg_${number.name.replace(/\W/g, '_')}` : ''} FROM ${src} GROUP BY 1 ORDER BY 2 DESC LIMIT 10`,
    },
  ];
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

/**
 * Times built-in queries on the served snapshot and on DuckDB re-reading the table's source files. The
 * file side runs only these fixed queries over exactly the files the snapshot lists, in a DuckDB of its own.
 */
export async function compareWithFiles(generation: Generation, meta: TableMeta, dataDir: string, limits: QueryLimits, runs = 3) {
  if (meta.files.length === 0 || meta.columns.length === 0) throw new AppError('bad_request', `table ${meta.table} has no readable files to compare with`);
  const readers = meta.files
    .filter((f) => !f.stale)
    .map((f) => {
      const kind = fileKindOf(f.path);
      const abs = path.join(dataDir, f.path);
      if (!kind || !abs.startsWith(path.resolve(dataDir) + path.sep)) return null;
      if (kind.format === 'arrow') throw new AppError('bad_request', `table ${meta.table} has Arrow IPC files (${f.path}), which DuckDB cannot read by itself: there is nothing to compare the cache with`);
      return `SELECT * FROM ${fileReaderSql(kind, abs)}`;
    })
    .filter((r): r is string => r !== null);
  const source = `(${readers.join(' UNION ALL BY NAME ')})`;
  // Several queries with awaits between them: the generation must stay open until the last one.
  const unpin = generation.pin();
  const db = await openDuckDB({ threads: undefined }).catch((err: unknown) => {
    unpin();
    throw err;
  });
  try {
    const results = [];
    for (const q of comparisonQueries(meta)) {
      const cache: number[] = [];
      const files: number[] = [];
      let rows = 0;
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const out = await runQuery(generation, q.sql(quoteIdent(meta.table)), limits, { [meta.table]: meta.version });
        cache.push(performance.now() - t0);
        rows = out.rowCount;
        const t1 = performance.now();
        try {
          await db.conn.runAndReadAll(q.sql(source));
        } catch (err) {
          throw new AppError('bad_request', `re-reading the files of ${meta.table} failed: ${(err as Error).message.split('\n')[0]}`);
        }
        files.push(performance.now() - t1);
      }
      const c = median(cache);
      const f = median(files);
      results.push({ query: q.name, sql: q.sql(quoteIdent(meta.table)), rows, flashduckMs: Math.round(c * 100) / 100, filesMs: Math.round(f * 100) / 100, speedup: Math.round((f / c) * 10) / 10 });
    }
    return { table: meta.table, version: meta.version, files: readers.length, runs, results };
  } finally {
    closeDuckDB(db);
    unpin();
  }
}
