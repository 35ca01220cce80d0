import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  AppError,
  PartMissingError,
  quoteIdent,
  SnapshotEvent,
  type PartRef,
  gauge,
  readTableMetas,
  type TableMeta,
  counter,
  histogram,
  type Keys,
  type Logger,
  type RedisClient,
} from '@flashduck/core';
import { PartCache, partsSelectSql, type PartColumn } from '@flashduck/core/duckdb';
import type { ChangedParts } from './changes.js';
import { Generation, type ServedTable } from './generation.js';

const swapsTotal = counter('flashduck_query_snapshot_swaps_total', 'Snapshot generations put into service');
const loadSeconds = histogram('flashduck_query_snapshot_load_seconds', 'Time to fetch and prepare one table version', [], [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60]);
const partBytesFetched = counter('flashduck_query_part_bytes_fetched_total', 'Bytes of parts fetched from Redis (parts this replica did not have)');
const partsFetched = counter('flashduck_query_parts_fetched_total', 'Parts fetched from Redis');
const partsPrefetched = counter('flashduck_query_parts_prefetched_total', 'Parts fetched as soon as the cacher stored them, before a version listed them');
const partsReused = counter('flashduck_query_parts_reused_total', 'Parts a new table version reused from the local part cache');
const servedParts = gauge('flashduck_query_served_parts', 'Parts of the table version this replica serves', ['table']);
const loadErrors = counter('flashduck_query_snapshot_load_errors_total', 'Table versions that could not be loaded', ['table']);
const servedVersion = gauge('flashduck_query_served_version', 'Snapshot version this replica serves', ['table']);
const servedRows = gauge('flashduck_query_served_rows', 'Rows this replica serves', ['table']);

/** First pause before a version that failed to load is tried again; it doubles up to the maximum. */
const LOAD_RETRY_MS = 1_000;
const LOAD_RETRY_MAX_MS = 60_000;

/**
 * One published build of a table. Version numbers start again at 1 when Redis lost its data, so a version
 * alone does not name a build: its publish time goes with it.
 */
const buildId = (meta: TableMeta) => `v${meta.version}-${meta.updatedAt}`;
const sameBuild = (a: TableMeta, b: TableMeta) => a.version === b.version && a.updatedAt === b.updatedAt;

/** A generation pinned for one caller, who calls `release` when done with it. */
export interface HeldGeneration {
  readonly generation: Generation;
  readonly release: () => void;
}

/** The views of a change-feed generation: rows only the older version serves, and only the newer. */
export const CHANGES_REMOVED = 'removed';
export const CHANGES_ADDED = 'added';
const CHANGES_KEY = 'changes|';

/** No rows, typed as `columns`. */
const emptySelectSql = (columns: readonly PartColumn[]) =>
  columns.length ? `SELECT ${columns.map((c) => `CAST(NULL AS ${c.type}) AS ${quoteIdent(c.name)}`).join(', ')} WHERE false` : null;

/** Pinned generations (queries on older versions, change feeds) kept at once per replica. */
const PINNED_GENERATIONS = 4;
/** How long a prefetched part stays on disk waiting for a version to list it (a build that is not published). */
const PREFETCH_KEEP_MS = 10 * 60_000;
/** Parts fetched at once ahead of their version. */
const PREFETCH_PARALLELISM = 2;

export interface CatalogOptions {
  readonly redis: RedisClient;
  readonly keys: Keys;
  readonly log: Logger;
  readonly cacheDir: string;
  readonly connections: number;
  readonly memoryLimitMb: number | undefined;
  readonly threads: number | undefined;
}

/**
 * The set of snapshot versions this replica serves. `refresh()` compares every table's metadata in
 * Redis with what is served, fetches and prepares changed versions off the request path, then swaps
 * in a new generation in one step. Queries pinned to the old generation finish on it.
 */
export class Catalog {
  private current: Generation | null = null;
  private nextId = 1;
  private refreshing: Promise<void> | null = null;
  private again = false;
  private readonly live = new Set<Generation>();
  /** Versions that failed to load, by table: tried again after a pause that doubles with each failure. */
  private readonly failedVersions = new Map<string, { build: string; failures: number; retryAt: number }>();
  private readonly listeners = new Set<(e: SnapshotEvent) => void>();
  private forgetting = false;
  private readonly parts: PartCache;
  /** Versions a refresh is preparing: their parts stay until the generation serving them is in service. */
  private preparing: TableMeta[] = [];
  /** Generations serving older versions of some tables (pinned queries), by what they serve; the newest few. */
  private readonly pinnedGens = new Map<string, Promise<Generation>>();
  /** Versions a pinned generation is being prepared for: their parts stay. */
  private pinning: TableMeta[] = [];
  /** Parts fetched (or being fetched) before a version listed them: part id → kept until. */
  private readonly prefetched = new Map<string, number>();
  private readonly prefetchQueue: PartRef[] = [];
  private prefetchRunning = 0;
  /** The last refresh completed: the replica has loaded what Redis announced at least once. */
  loaded = false;

  constructor(private readonly o: CatalogOptions) {
    this.parts = new PartCache({
      redis: o.redis,
      keys: o.keys,
      dir: path.join(o.cacheDir, 'parts'),
      duckdb: { threads: o.threads },
      onFetch: (_part, bytes) => {
        partBytesFetched.inc(bytes);
        partsFetched.inc();
      },
    });
  }


  /** The generation new queries use. */
  get generation(): Generation | null {
    return this.current;
  }

  /** Subscribes to table changes this replica has put into service. */
  onChange(listener: (e: SnapshotEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Brings the served versions up to date (coalesces concurrent calls). */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.refreshOnce();
      } while (this.again);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /**
   * The versions to serve: Redis's current metadata, plus every served table Redis has no snapshot of but the
   * folder has not lost (its record unreadable, not rebuilt yet, or Redis forgot it): a table leaves a replica
   * only once a complete folder record no longer lists it.
   */
  private async readMetas(): Promise<Map<string, TableMeta>> {
    const { metas, unreadable, listed, record } = await readTableMetas(this.o.redis, this.o.keys);
    for (const u of unreadable) this.o.log.error({ table: u.table, error: u.error }, 'table metadata unreadable; keeping the served version');
    const forgotten: string[] = [];
    for (const [name, served] of this.current?.tables ?? []) {
      if (metas.has(name)) continue;
      if (record.state === 'complete' && !listed.has(name)) continue; // dropped: the folder has no files of it
      metas.set(name, served.meta);
      if (record.state !== 'complete') forgotten.push(name);
    }
    if (forgotten.length && !this.forgetting) this.o.log.warn({ tables: forgotten, record: record.state }, 'Redis holds no record of served tables; serving them until they are rebuilt');
    this.forgetting = forgotten.length > 0;
    return metas;
  }

  /**
   * Fetches a part the cacher has just stored, before the version that will list it is published, so a build
   * of many files reaches this replica while it is still running and the publish costs only the last parts.
   */
  prefetch(part: PartRef): void {
    if (this.prefetched.has(part.id)) return;
    this.prefetched.set(part.id, Date.now() + PREFETCH_KEEP_MS);
    this.prefetchQueue.push(part);
    while (this.prefetchRunning < PREFETCH_PARALLELISM && this.prefetchQueue.length) {
      this.prefetchRunning += 1;
      void this.drainPrefetch().finally(() => {
        this.prefetchRunning -= 1;
      });
    }
  }

  private async drainPrefetch(): Promise<void> {
    for (let part = this.prefetchQueue.shift(); part; part = this.prefetchQueue.shift()) {
      if (!this.prefetched.has(part.id)) continue; // a version listed it first and fetched it
      try {
        if ((await this.parts.ensure(part)).fetched) partsPrefetched.inc();
      } catch (err) {
        // Collected already (its build was not published), or Redis is away: the version's own fetch decides.
        this.prefetched.delete(part.id);
        if (!(err instanceof PartMissingError)) this.o.log.debug({ err, part: part.id }, 'prefetching a part failed');
      }
    }
  }

  /**
   * A generation serving the current tables with `overrides` (older retained versions) in place of theirs, and
   * only the tables in `only` when given: for queries pinned to versions or a time. Built once (parts fetched
   * as for any version) and kept for the next queries with the same pins until the served generation changes.
   */
  pinned(overrides: ReadonlyMap<string, TableMeta>, only?: ReadonlySet<string>): Promise<HeldGeneration> {
    const current = this.current;
    if (!current) throw new AppError('not_ready', 'no tables are loaded yet');
    const key = `${current.id}|${only ? [...only].sort().join(',') : '*'}|${[...overrides].sort(([a], [b]) => a.localeCompare(b)).map(([t, m]) => `${t}@${buildId(m)}`).join(',')}`;
    return this.hold(key, [...overrides.values()], async () => {
      const tables = new Map<string, ServedTable>();
      for (const [name, t] of current.tables) if (!only || only.has(name)) tables.set(name, t);
      for (const [name, meta] of overrides) tables.set(name, await this.prepare(meta));
      return tables;
    });
  }

  /**
   * A generation holding what two versions of a table do not share, as two views of the same columns
   * ({@link CHANGES_REMOVED}: rows only `from` serves; {@link CHANGES_ADDED}: only `to`): a change feed reads
   * only the parts that differ, fetched as for any version. Kept across swaps (it does not depend on them).
   */
  changes(from: TableMeta, to: TableMeta, { removed, added }: ChangedParts, columns: readonly PartColumn[]): Promise<HeldGeneration> {
    const sides = [
      { ...from, parts: removed },
      { ...to, parts: added },
    ];
    return this.hold(`${CHANGES_KEY}${from.table}|${buildId(from)}|${buildId(to)}`, sides, async () => {
      const [r, a] = [await this.prepare(sides[0]!, columns), await this.prepare(sides[1]!, columns)];
      return new Map([
        [CHANGES_REMOVED, r],
        [CHANGES_ADDED, a],
      ]);
    });
  }

  /**
   * A kept generation (built by `build` on first use, its parts held while they are fetched), pinned for the
   * caller: `release` when done. One the LRU or a swap retired and closed between its build and this call is
   * built again.
   */
  private async hold(key: string, metas: TableMeta[], build: () => Promise<Map<string, ServedTable>>): Promise<HeldGeneration> {
    for (;;) {
      let made = this.pinnedGens.get(key);
      if (made) {
        this.pinnedGens.delete(key);
        this.pinnedGens.set(key, made);
      } else {
        made = (async () => {
          this.pinning.push(...metas);
          try {
            const gen = await Generation.create(this.nextId++, await build(), { connections: this.o.connections, memoryLimitMb: this.o.memoryLimitMb, threads: this.o.threads });
            gen.onClose = () => {
              this.live.delete(gen);
              void this.removeUnusedFiles();
            };
            this.live.add(gen);
            return gen;
          } finally {
            this.pinning = this.pinning.filter((m) => !metas.includes(m));
          }
        })();
        const mine = made;
        made.catch(() => {
          if (this.pinnedGens.get(key) === mine) this.pinnedGens.delete(key);
        });
        this.pinnedGens.set(key, made);
        while (this.pinnedGens.size > PINNED_GENERATIONS) {
          const [oldKey, old] = this.pinnedGens.entries().next().value!;
          this.pinnedGens.delete(oldKey);
          void old.then((g) => g.retire()).catch(() => undefined);
        }
      }
      const gen = await made;
      // Checked and pinned in the same step as the await resumes: nothing can close it in between.
      if (!gen.isClosed) return { generation: gen, release: gen.pin() };
      if (this.pinnedGens.get(key) === made) this.pinnedGens.delete(key);
    }
  }

  /** Retires every pinned generation (the served one changed: they serve its old versions of unpinned tables). */
  private dropPinned(): void {
    for (const [key, p] of this.pinnedGens) {
      if (key.startsWith(CHANGES_KEY)) continue;
      this.pinnedGens.delete(key);
      void p.then((g) => g.retire()).catch(() => undefined);
    }
  }

  /**
   * Fetches the parts of a version this replica lacks (a few at a time) and returns how to serve it (as
   * `columns` when given; then a version without parts serves no rows of those columns).
   */
  private async prepare(meta: TableMeta, columns?: readonly PartColumn[]): Promise<ServedTable> {
    const started = Date.now();
    const files = new Map<string, string>();
    const got = await this.parts.ensureAll(meta.parts);
    meta.parts.forEach((part, i) => {
      const wasPrefetched = this.prefetched.delete(part.id);
      if (!got[i]!.fetched && !wasPrefetched) partsReused.inc();
      files.set(part.id, got[i]!.file);
    });
    loadSeconds.observe((Date.now() - started) / 1000);
    const select = columns ? (partsSelectSql(meta.parts, columns) ?? emptySelectSql(columns)) : partsSelectSql(meta.parts, meta.columns);
    return { meta, select, files };
  }

  private async refreshOnce(): Promise<void> {
    const started = Date.now();
    await mkdir(this.o.cacheDir, { recursive: true });
    const metas = await this.readMetas();
    this.preparing = [...metas.values()];
    try {
      await this.refreshWith(metas, started);
    } finally {
      this.preparing = [];
    }
  }

  private async refreshWith(metas: Map<string, TableMeta>, started: number): Promise<void> {
    const { log } = this.o;
    const served = this.current?.tables ?? new Map<string, ServedTable>();
    const next = new Map<string, ServedTable>();
    const changes: SnapshotEvent[] = [];
    for (const [name, meta] of metas) {
      const have = served.get(name);
      if (have && sameBuild(have.meta, meta)) {
        next.set(name, have);
        continue;
      }
      const failed = this.failedVersions.get(name);
      if (failed?.build === buildId(meta) && Date.now() < failed.retryAt) {
        if (have) next.set(name, have);
        continue;
      }
      try {
        next.set(name, await this.prepare(meta));
        this.failedVersions.delete(name);
        changes.push({ v: 1, type: 'snapshot', table: name, version: meta.version, at: Date.now() });
      } catch (err) {
        // What failed may pass (a full disk, a Redis timeout): never given up on, but not retried at every refresh.
        const failures = failed?.build === buildId(meta) ? failed.failures + 1 : 1;
        const retryMs = Math.min(LOAD_RETRY_MS * 2 ** (failures - 1), LOAD_RETRY_MAX_MS);
        this.failedVersions.set(name, { build: buildId(meta), failures, retryAt: Date.now() + retryMs });
        if (err instanceof PartMissingError) {
          // Usually superseded and collected while we fetched it: the newer version is taken at once (this one waits
          // for its retry, so a version that lists a part Redis does not hold cannot spin the refresh).
          this.again = true;
          if (failures > 1) log.warn({ err, table: name, version: meta.version, failures, retryMs }, 'a part of the current table version is missing in Redis; serving the previous one until a retry loads it');
        } else {
          loadErrors.inc({ table: name });
          log.error({ err, table: name, version: meta.version, failures, retryMs }, 'could not load table version; serving the previous one until a retry loads it');
        }
        if (have) next.set(name, have);
      }
    }
    for (const name of served.keys()) {
      if (!metas.has(name)) changes.push({ v: 1, type: 'dropped', table: name, version: 0, at: Date.now() });
    }
    if (changes.length || !this.current) {
      const fetched = Date.now();
      await this.swap(next);
      const now = Date.now();
      for (const c of changes) {
        // fetchMs: metadata and snapshot files; swapMs: the new generation; sincePublishMs: from the cacher's publish.
        const publishedAt = next.get(c.table)?.meta.updatedAt;
        log.info(
          { table: c.table, version: c.version, type: c.type, fetchMs: fetched - started, swapMs: now - fetched, sincePublishMs: publishedAt ? now - publishedAt : undefined },
          'serving table version',
        );
        for (const l of this.listeners) l(c);
      }
    }
    this.loaded = true;
  }

  private async swap(tables: Map<string, ServedTable>): Promise<void> {
    const gen = await Generation.create(this.nextId++, tables, {
      connections: this.o.connections,
      memoryLimitMb: this.o.memoryLimitMb,
      threads: this.o.threads,
    });
    gen.onClose = () => {
      this.live.delete(gen);
      void this.removeUnusedFiles();
    };
    this.live.add(gen);
    const old = this.current;
    this.current = gen;
    old?.retire();
    this.dropPinned();
    swapsTotal.inc();
    servedVersion.reset();
    servedRows.reset();
    servedParts.reset();
    for (const [name, t] of tables) {
      servedVersion.set({ table: name }, t.meta.version);
      servedRows.set({ table: name }, t.meta.rows);
      servedParts.set({ table: name }, t.meta.parts.length);
    }
  }

  /** Deletes local parts no live generation reads. */
  private async removeUnusedFiles(): Promise<void> {
    const used = new Set([...this.live].flatMap((g) => [...g.tables.values()].flatMap((t) => t.meta.parts.map((p) => p.id))));
    // A refresh may be fetching parts for the next generation: keep those too.
    for (const t of [...this.preparing, ...this.pinning]) for (const p of t.parts) used.add(p.id);
    const now = Date.now();
    for (const [id, until] of this.prefetched) {
      if (until < now) this.prefetched.delete(id);
      else used.add(id);
    }
    await this.parts.retain(used);
  }

  /** Retires every generation and deletes the local files. */
  async close(): Promise<void> {
    await this.refreshing?.catch(() => undefined);
    this.current?.retire();
    this.current = null;
    for (const g of this.live) g.retire();
  }
}
