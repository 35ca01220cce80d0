import { randomUUID } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Queue } from 'bullmq';
import {
  FileFingerprint,
  Fragment,
  LuaScript,
  PartStored,
  SnapshotEvent,
  TableMeta,
  decode,
  encode,
  isTableOptionsPath,
  retiredMember,
  storePart,
  type Keys,
  type Lease,
  type Logger,
  type PartRef,
  type RedisClient,
  type StoredPart,
} from '@flashduck/core';
import { DUCKDB_ENGINE_VERSION, GZIP_BELOW_BYTES, closeDuckDB, encodePart, gzipFile, openDuckDB, storedColumns } from '@flashduck/core/duckdb';
import type { CacherConfig } from '../config.js';
import { collectRetired, parseFragments } from '../store/fragments.js';
import { describeSources, readSources, tableSchema, versionParts, type StoredFragment } from './sources.js';
import type { FileReader } from './reader-pool.js';
import { loadTableOptions } from './table-options.js';

const publishScript = LuaScript.load('version-publish-6');
/** Score for a part written but not yet referenced: collected only if the writer died before committing. */
export const PROVISIONAL_MS = 24 * 60 * 60 * 1000;

export interface RebuildDeps {
  readonly redis: RedisClient;
  readonly keys: Keys;
  readonly config: CacherConfig;
  readonly log: Logger;
  readonly exportQueue: Queue;
  readonly reader: FileReader;
  /** Builds the table again shortly (files changed while they were read). */
  readonly buildAgain: (table: string, gen: number) => Promise<void>;
  /** Called with the local file of a part this build stored (kept for merges), before it is deleted. */
  readonly keepPart?: (table: string, part: PartRef, file: string) => Promise<void>;
}

export type RebuildResult =
  | { outcome: 'skipped'; reason: string }
  | { outcome: 'deferred'; reason: string }
  | { outcome: 'published'; version: number; rows: number; bytes: number; written: number; parts: number; errors: number; ms: number; filesRead: number; partsReused: number }
  | { outcome: 'dropped' }
  | { outcome: 'refused' };

export interface TableState {
  manifest: Map<string, FileFingerprint>;
  /** False when Redis holds no manifest generation for the table (it lost its data): nothing to build from. */
  recorded: boolean;
  gen: number;
  fragments: Map<string, Fragment>;
  builtGen: number;
  current: TableMeta | null;
}

/** Reads a table's manifest, fragment index and current version in one transaction (one slot). */
export async function readTableState(redis: RedisClient, keys: Keys, log: Logger, table: string): Promise<TableState> {
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
  if (meta && !meta.ok) log.warn({ table, error: meta.error }, 'current version unreadable (written by another release?); building the table again');
  return {
    manifest,
    recorded: res[1]![1] !== null,
    gen: Number(res[1]![1] ?? 0),
    fragments: parseFragments(res[2]![1] as Record<string, string>, log),
    // A version this release cannot read is built again.
    builtGen: sourceGen === null || (meta && !meta.ok) ? -1 : Number(sourceGen),
    current: meta?.ok ? meta.value : null,
  };
}

/**
 * Publishes a version (or a drop, `meta` null) with the fragment index that goes with it, if the caller still
 * holds the build lease and no newer generation is current. Parts the previous version listed and this one
 * does not are retired (collected after the grace period).
 */
export async function publishVersion(
  deps: Pick<RebuildDeps, 'redis' | 'keys' | 'config' | 'exportQueue'>,
  table: string,
  lease: Lease,
  meta: TableMeta | null,
  gen: number,
  fragments: ReadonlyMap<string, Fragment>,
  provisional: readonly StoredPart[],
): Promise<boolean> {
  const { redis, keys } = deps;
  const now = Date.now();
  const event: SnapshotEvent = { v: 1, type: meta ? 'snapshot' : 'dropped', table, version: meta?.version ?? 0, sourceGen: gen, builtBy: deps.config.instanceId, at: now };
  const index: Record<string, string> = {};
  for (const [p, f] of fragments) index[p] = encode(Fragment, f);
  const ok = await publishScript.run(
    redis,
    [keys.tableMeta(table), keys.tableRetired(table), keys.tableBuildLease(table), keys.tableFragments(table), keys.tableVersions(table), keys.tableState(table)],
    [
      lease.token,
      meta ? encode(TableMeta, meta) : '',
      meta?.version ?? 0,
      gen,
      now,
      keys.events,
      encode(SnapshotEvent, event),
      (meta?.parts ?? []).map(retiredMember).join(' '),
      JSON.stringify(index),
      provisional.map(retiredMember).join(' '),
    ],
  );
  if (Number(ok) !== 1) return false;
  await deps.exportQueue.add('snapshot', event, { jobId: `${table}-${meta ? `v${meta.version}-${meta.updatedAt}` : `drop-${gen}`}` });
  return true;
}

/**
 * Stores a local part file (a DuckDB database with table `part`) as a part of `table`, encoded as the configured
 * format (a small `duckdb` file gzip-compressed). The part is marked provisional in the retired set before its bytes are written,
 * so it is collected only if no version ever lists it.
 */
export async function storeNewPart(
  deps: Pick<RebuildDeps, 'redis' | 'keys' | 'config'>,
  table: string,
  file: string,
  shape: { rows: number; members: number; columns: { name: string; type: string }[] },
  workDir: string,
): Promise<{ part: PartRef; written: number }> {
  const { redis, keys, config } = deps;
  // A big `duckdb` part is stored as the file itself; every other one is encoded into `encoded` first.
  const encoded = `${file}.${config.snapshotFormat}`;
  let stored = encoded;
  let compression: 'gzip' | undefined;
  try {
    if (config.snapshotFormat === 'duckdb') {
      if ((await stat(file)).size < GZIP_BELOW_BYTES) {
        await gzipFile(file, encoded);
        compression = 'gzip';
      } else {
        stored = file;
      }
    } else {
      const db = await openDuckDB({ threads: 1, tempDir: path.join(workDir, 'spill') });
      try {
        await encodePart(db.conn, file, config.snapshotFormat, encoded, storedColumns(shape));
      } finally {
        closeDuckDB(db);
      }
    }
    const s = await storePart(redis, keys, table, stored, config.chunkBytes, (p) => redis.zadd(keys.tableRetired(table), Date.now() + PROVISIONAL_MS, retiredMember(p)));
    const part: PartRef = { id: s.id, format: config.snapshotFormat, ...(compression ? { compression } : {}), chunks: s.chunks, bytes: s.bytes, ...shape };
    // Replicas may fetch it while the rest of the version is built; losing this hint only delays them.
    await redis.publish(keys.partsStored, encode(PartStored, { v: 1, table, part, at: Date.now() })).catch(() => undefined);
    return { part, written: s.written };
  } finally {
    await rm(encoded, { force: true });
  }
}

/**
 * Rebuilds one table's version from its current manifest, if it is behind. The caller holds the table's build
 * lease; publishing checks it again (a build that lost its lease publishes nothing). Only new and changed files
 * are read and stored, each as one new part; every other file's rows stay in the part that already holds them.
 */
export async function rebuildTable(deps: RebuildDeps, table: string, lease: Lease): Promise<RebuildResult> {
  const { redis, keys, config } = deps;
  const log = deps.log.child({ table });
  const started = Date.now();
  const state = await readTableState(redis, keys, deps.log, table);
  // A diff whose manifest Redis no longer holds (it lost its data meanwhile) must not drop the table: the
  // monitor records the folder again and sends a diff of its own.
  if (!state.recorded) return { outcome: 'skipped', reason: 'Redis holds no manifest of the table (the monitor records it again)' };
  if (state.builtGen >= state.gen) return { outcome: 'skipped', reason: `snapshot already built from generation ${state.builtGen}` };

  // `_table.yaml` is the table's reader options, not a data file.
  const optionsPath = [...state.manifest.keys()].find(isTableOptionsPath);
  const dataFiles = new Map([...state.manifest].filter(([p]) => !isTableOptionsPath(p)));
  if (dataFiles.size === 0) {
    if (!(await publishVersion(deps, table, lease, null, state.gen, new Map(), []))) return { outcome: 'refused' };
    await redis.srem(keys.tables, table);
    log.info({ gen: state.gen }, 'table dropped (no files left)');
    return { outcome: 'dropped' };
  }

  log.info({ gen: state.gen, files: state.manifest.size }, 'rebuild started');
  const workDir = path.join(config.workDir, `${table}-${randomUUID().slice(0, 8)}`);
  await mkdir(workDir, { recursive: true });
  try {
    const version = await redis.incr(keys.tableSeq(table));
    const options = await loadTableOptions(config.dataDir, table, optionsPath);
    if (!options.ok) log.warn({ error: options.error }, 'the table\'s reader options are refused; its CSV/TSV files keep their last rows');
    const { sources, changing } = await readSources({
      dataDir: config.dataDir,
      workDir,
      manifest: dataFiles,
      options,
      fragments: state.fragments,
      reader: deps.reader,
      parallelism: config.readParallelism,
      store: (file, shape) => storeNewPart(deps, table, file, shape, workDir),
    });
    const provisional = sources.flatMap((s) => (s.kind === 'fresh' ? [s.part] : []));
    if (changing.length) {
      // Parts stored for this build are collectable at once (unless a later version lists them).
      if (provisional.length) await redis.zadd(keys.tableRetired(table), ...provisional.flatMap((p) => [Date.now(), retiredMember(p)]));
      // A file was gone while it was read (renamed or deleted meanwhile, perhaps back as it was by now): this
      // build does not show the manifest's generation, so it is not published. The previous version keeps
      // serving, and the table is built again shortly (a file renamed away and back leaves the monitor nothing
      // to report; a file that stays gone is in the monitor's next diff).
      log.info({ gen: state.gen, files: changing.slice(0, 10) }, 'files were gone while they were read; building the table again');
      await deps.buildAgain(table, state.gen);
      return { outcome: 'deferred', reason: `${changing.length} file(s) were gone while they were read` };
    }
    const readAt = Date.now();

    // Every file read now became one new part (stored as it was read, before the version that lists it).
    const fragments = new Map<string, Fragment>();
    const holding: StoredFragment[] = [];
    const fresh: { file: string; part: PartRef }[] = [];
    let written = 0;
    for (const s of sources) {
      if (s.kind === 'fresh') {
        written += s.written;
        fresh.push({ file: s.file, part: s.part });
        const f: StoredFragment = {
          v: 2,
          path: s.path,
          fingerprint: s.fingerprint,
          part: s.part,
          member: 0,
          rows: s.rows,
          columns: s.columns,
          format: s.format,
          ...(s.options ? { options: s.options } : {}),
          ...(s.skipped ? { skipped: s.skipped } : {}),
        };
        fragments.set(s.path, f);
        holding.push(f);
      } else if (s.kind === 'cached') {
        fragments.set(s.path, s.fragment);
        holding.push(s.fragment);
      } else if (s.kind === 'stale') {
        fragments.set(s.path, { ...s.fragment, failed: s.failed });
        holding.push(s.fragment);
      } else {
        fragments.set(s.path, { v: 2, path: s.path, fingerprint: s.fingerprint, member: 0, rows: 0, columns: [], format: 'unknown', failed: { fingerprint: s.fingerprint, message: s.message, ...(s.options ? { options: s.options } : {}) } });
      }
    }
    const schema = tableSchema(sources);
    const parts = schema.columns.length ? versionParts(holding) : [];
    const { files, errors } = describeSources(sources);
    const meta: TableMeta = {
      v: 2,
      table,
      version,
      parts,
      bytes: parts.reduce((n, p) => n + p.bytes, 0),
      rows: files.reduce((n, f) => n + f.rows, 0),
      columns: schema.columns.map((c) => ({ name: c.name, type: c.type, files: [...c.files] })),
      files,
      errors,
      conflicts: [...schema.conflicts],
      sourceGen: state.gen,
      buildMs: Date.now() - started,
      updatedAt: Date.now(),
      cause: 'build',
      engine: DUCKDB_ENGINE_VERSION,
    };
    if (!(await publishVersion(deps, table, lease, meta, state.gen, fragments, provisional))) return { outcome: 'refused' };
    const published = Date.now();
    // The table set is in another slot: its own step (idempotent; restores a table a drop raced with).
    await redis.sadd(keys.tables, table);
    const reused = new Set(parts.map((p) => p.id));
    for (const f of fresh) reused.delete(f.part.id);
    log.info(
      {
        version,
        gen: state.gen,
        rows: meta.rows,
        parts: parts.length,
        bytes: meta.bytes,
        written,
        filesRead: fresh.length,
        partsReused: reused.size,
        errors: errors.length,
        ms: published - started,
        readMs: readAt - started,
        publishMs: published - readAt,
      },
      'snapshot published',
    );
    for (const e of errors) log.warn({ file: e.file, reason: e.message }, 'file could not be read');
    if (deps.keepPart) {
      for (const f of fresh) await deps.keepPart(table, f.part, f.file).catch(() => undefined);
    }
    await collectRetired(redis, keys, table, config.retainMs, Date.now(), config.retention);
    return {
      outcome: 'published',
      version,
      rows: meta.rows,
      bytes: meta.bytes,
      written,
      parts: parts.length,
      errors: errors.length,
      ms: published - started,
      filesRead: fresh.length,
      partsReused: reused.size,
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
