import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Queue } from 'bullmq';
import {
  FileFingerprint,
  LuaScript,
  SnapshotEvent,
  TableMeta,
  decode,
  encode,
  quoteIdent,
  quoteLiteral,
  readBlobToFile,
  retiredMember,
  writeBlobFromFile,
  type Fragment,
  type Keys,
  type Lease,
  type Logger,
  type RedisClient,
} from '@flashduck/core';
import type { DuckDBConnection } from '@duckdb/node-api';
import { DUCKDB_ENGINE_VERSION, closeDuckDB, openDuckDB } from '@flashduck/core/duckdb';
import type { CacherConfig } from '../config.js';
import { collectRetired, encodeFragment, fetchFragment, parseFragments } from '../store/fragments.js';
import { PARTS, SNAP, assembleView, describeSources, exportSnapshotFile, loadSources } from './build-snapshot.js';
import type { FileReader } from './reader-pool.js';

const publishScript = LuaScript.load('snapshot-publish-3');
/** Score for a blob written but not yet referenced: collected only if the writer died before committing. */
const PROVISIONAL_MS = 24 * 60 * 60 * 1000;

export interface RebuildDeps {
  readonly redis: RedisClient;
  readonly keys: Keys;
  readonly config: CacherConfig;
  readonly log: Logger;
  readonly exportQueue: Queue;
  readonly reader: FileReader;
  /** Builds the table again shortly (files changed while they were read). */
  readonly buildAgain: (table: string, gen: number) => Promise<void>;
}

export type RebuildResult =
  | { outcome: 'skipped'; reason: string }
  | { outcome: 'deferred'; reason: string }
  | { outcome: 'published'; version: number; rows: number; bytes: number; errors: number; ms: number; filesRead: number; partsReused: number }
  | { outcome: 'dropped' }
  | { outcome: 'refused' };

interface TableState {
  manifest: Map<string, FileFingerprint>;
  /** False when Redis holds no manifest generation for the table (it lost its data): nothing to build from. */
  recorded: boolean;
  gen: number;
  fragments: Map<string, Fragment>;
  builtGen: number;
  current: TableMeta | null;
}

async function readState(deps: RebuildDeps, table: string): Promise<TableState> {
  const { redis, keys, log } = deps;
  // One slot, one transaction: the manifest and its generation are read together.
  const res = await redis
    .multi()
    .hgetall(keys.tableFiles(table))
    .hget(keys.tableState(table), 'gen')
    .hgetall(keys.tableFragments(table))
    .hmget(keys.tableMeta(table), 'sourceGen', 'json')
    .exec();
  if (!res) throw new Error(`reading the state of table ${table} was aborted`);
  for (const [err] of res) if (err) throw err;
  const files = res[0]![1] as Record<string, string>;
  const manifest = new Map<string, FileFingerprint>();
  for (const [p, json] of Object.entries(files)) {
    const d = decode(FileFingerprint, json);
    if (d.ok) manifest.set(p, d.value);
    else log.warn({ table, path: p, error: d.error }, 'manifest entry unreadable; skipped until the monitor rewrites it');
  }
  const [sourceGen, metaJson] = res[3]![1] as [string | null, string | null];
  const meta = metaJson ? decode(TableMeta, metaJson) : null;
  return {
    manifest,
    recorded: res[1]![1] !== null,
    gen: Number(res[1]![1] ?? 0),
    fragments: parseFragments(res[2]![1] as Record<string, string>, log),
    builtGen: sourceGen === null ? -1 : Number(sourceGen),
    current: meta?.ok ? meta.value : null,
  };
}

async function publish(
  deps: RebuildDeps,
  table: string,
  lease: Lease,
  meta: TableMeta | null,
  gen: number,
  member: string,
): Promise<boolean> {
  const { redis, keys } = deps;
  const now = Date.now();
  const event: SnapshotEvent = { v: 1, type: meta ? 'snapshot' : 'dropped', table, version: meta?.version ?? 0, sourceGen: gen, builtBy: deps.config.instanceId, at: now };
  const ok = await publishScript.run(
    redis,
    [keys.tableMeta(table), keys.tableRetired(table), keys.tableBuildLease(table)],
    [lease.token, meta ? encode(TableMeta, meta) : '', meta?.version ?? 0, gen, now, keys.events, encode(SnapshotEvent, event), member],
  );
  if (Number(ok) !== 1) return false;
  await deps.exportQueue.add('snapshot', event, { jobId: `${table}-${meta ? `v${meta.version}` : `drop-${gen}`}` });
  return true;
}

/** Where the cacher keeps the last snapshot file it built of each table, to start the next build from. */
const lastFile = (config: CacherConfig, table: string) => path.join(config.workDir, 'last', `${table}.duckdb`);

/**
 * Puts the current version's snapshot file at `file`: the copy this cacher kept, or else the stored
 * `duckdb` snapshot from Redis. False when there is none to start from (the build starts empty).
 */
async function previousSnapshot(deps: RebuildDeps, table: string, current: TableMeta | null, file: string): Promise<boolean> {
  if (!current || current.engine !== DUCKDB_ENGINE_VERSION) return false;
  const kept = lastFile(deps.config, table);
  try {
    // Version numbers start again after Redis lost its data: the publish time tells builds apart.
    if ((await readFile(`${kept}.version`, 'utf8')) === `${current.version}@${current.updatedAt}`) {
      await copyFile(kept, file);
      return true;
    }
  } catch {
    /* nothing kept */
  }
  if (current.format !== 'duckdb' || !current.blob) return false;
  try {
    await readBlobToFile(deps.redis, deps.keys, { table, id: current.blob, chunks: current.chunks }, file);
    return true;
  } catch {
    await rm(file, { force: true });
    return false;
  }
}

/** Keeps the snapshot file just published for the next build of the table. */
async function keepForNextBuild(config: CacherConfig, table: string, meta: TableMeta, file: string): Promise<void> {
  const kept = lastFile(config, table);
  await mkdir(path.dirname(kept), { recursive: true });
  await rename(file, kept);
  await writeFile(`${kept}.version`, `${meta.version}@${meta.updatedAt}`);
}

async function mostlyFree(conn: DuckDBConnection): Promise<boolean> {
  const r = await conn.runAndReadAll(`SELECT total_blocks, free_blocks FROM pragma_database_size() WHERE database_name = '${SNAP}'`);
  const [total, free] = (r.getRowsJS()[0] ?? [0, 0]).map(Number) as [number, number];
  return total > 64 && free * 2 > total;
}

async function compactInto(conn: DuckDBConnection, file: string, tmp: string): Promise<void> {
  await conn.run(`ATTACH ${quoteLiteral(file)} AS old_snap (READ_ONLY)`);
  await conn.run(`ATTACH ${quoteLiteral(tmp)} AS new_snap`);
  await conn.run('COPY FROM DATABASE old_snap TO new_snap');
  await conn.run('DETACH old_snap');
  await conn.run('DETACH new_snap');
  await rename(tmp, file);
}

/**
 * Rebuilds one table's snapshot from its current manifest, if it is behind. The caller holds the
 * table's build lease; publishing checks it again (a build that lost its lease publishes nothing).
 */
export async function rebuildTable(deps: RebuildDeps, table: string, lease: Lease): Promise<RebuildResult> {
  const { redis, keys, config } = deps;
  const log = deps.log.child({ table });
  const started = Date.now();
  const state = await readState(deps, table);
  // A diff whose manifest Redis no longer holds (it lost its data meanwhile) must not drop the table: the
  // monitor records the folder again and sends a diff of its own.
  if (!state.recorded) return { outcome: 'skipped', reason: 'Redis holds no manifest of the table (the monitor records it again)' };
  if (state.builtGen >= state.gen) return { outcome: 'skipped', reason: `snapshot already built from generation ${state.builtGen}` };

  if (state.manifest.size === 0) {
    if (!(await publish(deps, table, lease, null, state.gen, ''))) return { outcome: 'refused' };
    const retire = [...state.fragments.values()].filter((f) => f.chunks > 0).flatMap((f) => [Date.now(), retiredMember(f.blob, f.chunks)]);
    const tx = redis.multi().del(keys.tableFragments(table));
    if (retire.length) tx.zadd(keys.tableRetired(table), ...retire);
    await tx.exec();
    await redis.srem(keys.tables, table);
    log.info({ gen: state.gen }, 'table dropped (no files left)');
    return { outcome: 'dropped' };
  }

  log.info({ gen: state.gen, files: state.manifest.size }, 'rebuild started');
  const workDir = path.join(config.workDir, `${table}-${randomUUID().slice(0, 8)}`);
  await mkdir(workDir, { recursive: true });
  const db = await openDuckDB({ memoryLimitMb: config.memoryLimitMb, threads: config.threads, tempDir: path.join(workDir, 'spill') });
  const conns = [db.conn];
  try {
    for (let i = 1; i < config.readParallelism; i++) {
      const conn = await db.instance.connect();
      await conn.run(`SET TimeZone='UTC'`);
      conns.push(conn);
    }
    // The snapshot is a DuckDB file: a part table per source file and a view that unions them. It starts
    // from the previous version's file when there is one, so unchanged files' parts are kept as they are.
    const version = await redis.incr(keys.tableSeq(table));
    const snapFile = path.join(workDir, 'snapshot.duckdb');
    const reused = await previousSnapshot(deps, table, state.current, snapFile);
    await db.conn.run(`ATTACH ${quoteLiteral(snapFile)} AS ${SNAP}`);
    await db.conn.run(`CREATE SCHEMA IF NOT EXISTS ${SNAP}.${PARTS}`);
    const existingParts = new Set(
      reused
        ? (await db.conn.runAndReadAll(`SELECT table_name FROM duckdb_tables() WHERE database_name = '${SNAP}' AND schema_name = '${PARTS}'`)).getRowsJS().map((r) => String(r[0]))
        : [],
    );
    await db.conn.run(`DROP VIEW IF EXISTS ${SNAP}.main.${quoteIdent(table)}`);
    const { sources, changing } = await loadSources({
      conns,
      dataDir: config.dataDir,
      workDir,
      manifest: state.manifest,
      fragments: state.fragments,
      fetchFragment: (fragment, file) => fetchFragment(redis, keys, table, fragment, file),
      reader: deps.reader,
      existingParts,
      newFragmentId: (index) => `f${version}-${index}`,
    });
    if (changing.length) {
      // A file was gone while it was read (renamed or deleted meanwhile, perhaps back as it was by now): this
      // build does not show the manifest's generation, so it is not published. The previous version keeps
      // serving, and the table is built again shortly (a file renamed away and back leaves the monitor nothing
      // to report; a file that stays gone is in the monitor's next diff).
      log.info({ gen: state.gen, files: changing.slice(0, 10) }, 'files were gone while they were read; building the table again');
      await deps.buildAgain(table, state.gen);
      return { outcome: 'deferred', reason: `${changing.length} file(s) were gone while they were read` };
    }
    const used = new Set(sources.flatMap((s) => (s.kind === 'failed' ? [] : [s.part])));
    for (const p of existingParts) if (!used.has(p)) await db.conn.run(`DROP TABLE ${SNAP}.${PARTS}.${quoteIdent(p)}`);
    const reusedParts = [...existingParts].filter((p) => used.has(p)).length;
    const loadedAt = Date.now();
    const { schema, createView } = assembleView(sources, table);
    if (createView) await db.conn.run(createView);
    const compact = reused && (await mostlyFree(db.conn));
    await db.conn.run(`DETACH ${SNAP}`); // checkpoints: the file is complete and self-contained
    // A file reused many times accumulates free blocks: past half free, it is copied into a fresh one.
    if (compact) await compactInto(db.conn, snapFile, path.join(workDir, 'compact.duckdb'));
    const checkpointedAt = Date.now();
    const { files, errors } = describeSources(sources);
    let rows = files.reduce((n, f) => n + f.rows, 0);
    let built = false;
    const attachBuilt = async () => {
      if (!built) await db.conn.run(`ATTACH ${quoteLiteral(snapFile)} AS built (READ_ONLY)`);
      built = true;
    };

    const blob = `v${version}`;
    let stored = { chunks: 0, bytes: 0 };
    let member = '';
    if (createView) {
      let snapshotFile = snapFile;
      if (config.snapshotFormat !== 'duckdb') {
        await attachBuilt();
        snapshotFile = path.join(workDir, `snapshot.${config.snapshotFormat}`);
        rows = await exportSnapshotFile(db.conn, 'built', table, config.snapshotFormat, snapshotFile, schema.columns);
      }
      const size = (await stat(snapshotFile)).size;
      member = retiredMember(blob, Math.max(1, Math.ceil(size / config.chunkBytes)));
      await redis.zadd(keys.tableRetired(table), Date.now() + PROVISIONAL_MS, member);
      stored = await writeBlobFromFile(redis, keys, table, blob, snapshotFile, config.chunkBytes);
    }

    const meta: TableMeta = {
      v: 1,
      table,
      version,
      format: config.snapshotFormat,
      blob: createView ? blob : '',
      chunks: stored.chunks,
      bytes: stored.bytes,
      rows,
      columns: schema.columns.map((c) => ({ name: c.name, type: c.type, files: [...c.files] })),
      files,
      errors,
      conflicts: [...schema.conflicts],
      sourceGen: state.gen,
      buildMs: Date.now() - started,
      updatedAt: Date.now(),
      engine: DUCKDB_ENGINE_VERSION,
    };
    const published = Date.now();
    if (!(await publish(deps, table, lease, meta, state.gen, member))) return { outcome: 'refused' };
    // The table set is in another slot: its own step (idempotent; restores a table a drop raced with).
    await redis.sadd(keys.tables, table);
    log.info(
      {
        version,
        gen: state.gen,
        rows,
        bytes: stored.bytes,
        files: files.length,
        errors: errors.length,
        ms: published - started,
        loadMs: loadedAt - started,
        checkpointMs: checkpointedAt - loadedAt,
        storeMs: published - checkpointedAt,
      },
      'snapshot published',
    );

    // Fragments of the files read now (the readers wrote them), stored after the publish so a later build
    // reuses them instead of reading those files again.
    const newFragments = new Map<string, { fragment: Fragment; member: string }>();
    for (const s of sources) {
      if (s.kind !== 'fresh') continue;
      const id = s.fragmentId;
      const file = s.fragmentFile;
      const size = (await stat(file)).size;
      const fm = retiredMember(id, Math.max(1, Math.ceil(size / config.chunkBytes)));
      await redis.zadd(keys.tableRetired(table), Date.now() + PROVISIONAL_MS, fm);
      const saved = await writeBlobFromFile(redis, keys, table, id, file, config.chunkBytes);
      newFragments.set(s.path, {
        member: fm,
        fragment: { v: 1, path: s.path, fingerprint: s.fingerprint, blob: id, chunks: saved.chunks, bytes: saved.bytes, rows: s.rows, columns: s.columns, format: s.format },
      });
    }
    const now = Date.now();

    // Commit the fragment index: new fragments replace old ones, failures are remembered by fingerprint.
    const tx = redis.multi();
    for (const [p, { fragment, member: fm }] of newFragments) {
      tx.hset(keys.tableFragments(table), p, encodeFragment(fragment));
      tx.zrem(keys.tableRetired(table), fm);
      const old = state.fragments.get(p);
      if (old && old.chunks > 0) tx.zadd(keys.tableRetired(table), now, retiredMember(old.blob, old.chunks));
    }
    for (const s of sources) {
      // A renamed file's fragment moves to its new path (its blob stays: see below).
      if (s.kind === 'cached' && !state.fragments.has(s.path)) tx.hset(keys.tableFragments(table), s.path, encodeFragment(s.fragment));
      if (s.kind === 'stale') tx.hset(keys.tableFragments(table), s.path, encodeFragment({ ...s.fragment, failed: s.failed }));
      if (s.kind === 'failed') {
        tx.hset(
          keys.tableFragments(table),
          s.path,
          encodeFragment({ v: 1, path: s.path, fingerprint: s.fingerprint, blob: '', chunks: 0, bytes: 0, rows: 0, columns: [], format: 'unknown', failed: { fingerprint: s.fingerprint, message: s.message } }),
        );
      }
    }
    const stillUsed = new Set(sources.flatMap((s) => (s.kind === 'cached' || s.kind === 'stale' ? [s.fragment.blob] : [])));
    for (const [p, old] of state.fragments) {
      if (state.manifest.has(p)) continue;
      tx.hdel(keys.tableFragments(table), p);
      if (old.chunks > 0 && !stillUsed.has(old.blob)) tx.zadd(keys.tableRetired(table), now, retiredMember(old.blob, old.chunks));
    }
    await tx.exec();
    await collectRetired(redis, keys, table, config.retainMs, now);

    const ms = published - started;
    await keepForNextBuild(config, table, meta, snapFile);
    log.info({ version, filesRead: newFragments.size, partsReused: reusedParts, fragmentsMs: Date.now() - published }, 'fragments stored');
    for (const e of errors) log.warn({ file: e.file, reason: e.message }, 'file could not be read');
    return { outcome: 'published', version, rows, bytes: stored.bytes, errors: errors.length, ms, filesRead: newFragments.size, partsReused: reusedParts };
  } finally {
    for (const c of conns.slice(1)) c.closeSync();
    closeDuckDB(db);
    await rm(workDir, { recursive: true, force: true });
  }
}
