import { randomUUID } from 'node:crypto';
import { DelayedError, Queue, type Job } from 'bullmq';
import { superviseWorker } from '@flashduck/core/queue';
import {
  HeartbeatPublisher,
  Lease,
  QUEUES,
  ScanDiff,
  closeRedis,
  counter,
  createKeys,
  createRedis,
  decode,
  gauge,
  histogram,
  ownDirIn,
  type Component,
  type Keys,
  type Logger,
  type Readiness,
  type RedisClient,
} from '@flashduck/core';
import type { CacherConfig } from './config.js';
import { rebuildTable, type RebuildResult } from './rebuild/rebuild-table.js';
import { mergeTable } from './rebuild/merge.js';
import { collectRetired, currentParts } from './store/fragments.js';
import { PartCache } from '@flashduck/core/duckdb';
import { InProcessReader, ReaderPool, type FileReader } from './rebuild/reader-pool.js';
import os from 'node:os';
import { rm } from 'node:fs/promises';
import path from 'node:path';

const rebuildsTotal = counter('flashduck_cacher_rebuilds_total', 'Table rebuilds by outcome', ['outcome']);
const rebuildSeconds = histogram('flashduck_cacher_rebuild_duration_seconds', 'Duration of a published rebuild', [], [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]);
const snapshotBytes = gauge('flashduck_cacher_snapshot_bytes', 'Bytes of the parts the current version lists', ['table']);
const snapshotParts = gauge('flashduck_cacher_snapshot_parts', 'Parts the current version lists', ['table']);
const partBytesWritten = counter('flashduck_cacher_part_bytes_written_total', 'Bytes of new parts written to Redis (builds and merges)');
const mergesTotal = counter('flashduck_cacher_merges_total', 'Merges of parts by outcome', ['outcome']);
const snapshotRows = gauge('flashduck_cacher_snapshot_rows', 'Rows of the current snapshot', ['table']);
const snapshotVersion = gauge('flashduck_cacher_snapshot_version', 'Version of the current snapshot', ['table']);
const fileErrors = gauge('flashduck_cacher_file_errors', 'Files of a table that could not be read', ['table']);
const queueDepth = gauge('flashduck_cacher_queue_depth', 'Scan diffs waiting for the cacher', ['state']);
const jobLatency = histogram('flashduck_cacher_job_latency_seconds', 'Time from scan diff to the start of its rebuild');
const partsReused = counter('flashduck_cacher_parts_reused_total', 'Parts a new version kept from the one before (their files were not read again)');
const badMessages = counter('flashduck_cacher_bad_messages_total', 'Scan diffs that failed to decode (dead-lettered)');

/** Pause before building again a table whose files were gone while they were read (doubling up to the max). */
const BUILD_AGAIN_MS = 300;
const BUILD_AGAIN_MAX_MS = 5_000;

export interface CacherDeps {
  readonly config: CacherConfig;
  readonly log: Logger;
}

export interface Cacher extends Component {
  /** Rebuilds every table that is behind its manifest (also runs on a timer). */
  reconcile(): Promise<void>;
}

/**
 * Consumes scan diffs and rebuilds snapshots. Per table one build at a time (a lease, checked again
 * at publish). A diff for a generation already built is skipped, which coalesces bursts; a change
 * that lands during a build has its own diff and generation, so it is built next and never lost.
 * A timer also rebuilds any table whose snapshot is behind its manifest (a diff lost between the
 * monitor's two writes, a crashed cacher) and collects old versions.
 */
export async function startCacher(deps: CacherDeps): Promise<Cacher> {
  // Scratch space and the local part cache in a folder of this instance's own under CACHER_WORK_DIR.
  const config: CacherConfig = { ...deps.config, workDir: await ownDirIn(deps.config.workDir) };
  const log = deps.log.child({ component: 'cacher' });
  const keys: Keys = createKeys(config.prefix);
  const redis: RedisClient = createRedis(config, 'worker', log, 'cacher');
  const queueConn = createRedis(config, 'worker', log, 'cacher-queue');
  const diffQueue = new Queue(QUEUES.scanDiffs, { connection: queueConn, prefix: keys.bullPrefix });
  const exportQueue = new Queue(QUEUES.snapshots, {
    connection: queueConn,
    prefix: keys.bullPrefix,
    defaultJobOptions: { removeOnComplete: 1_000, removeOnFail: 10_000, attempts: 10, backoff: { type: 'exponential', delay: 1_000 } },
  });
  const deadLetters = new Queue(QUEUES.deadLetters, { connection: queueConn, prefix: keys.bullPrefix });
  let lastBuild: Record<string, unknown> = {};
  // Files nobody vetted are read in reader processes: a reader that crashes cannot take the cacher down.
  // Each reader gets its share of the cores: several readers each using every core would only contend.
  const readerThreads = config.threads ?? Math.max(1, Math.floor(os.availableParallelism() / config.readParallelism));
  const pool = config.isolateReads ? new ReaderPool(config.readParallelism, log, { timeoutMs: config.readTimeoutMs, startMs: config.readerStartMs, memoryLimitMb: config.memoryLimitMb, threads: readerThreads, dir: path.join(config.workDir, 'readers') }) : null;
  pool?.warm();
  const reader: FileReader = pool ?? new InProcessReader(path.join(config.workDir, 'reads'));
  let building = 0;
  // Parts this cacher stored or fetched, per table, kept on disk for merges.
  const caches = new Map<string, PartCache>();
  const cacheOf = (table: string) => {
    let c = caches.get(table);
    if (!c) {
      c = new PartCache({ redis, keys, dir: path.join(config.workDir, 'parts', table), duckdb: { threads: config.threads } });
      caches.set(table, c);
    }
    return c;
  };

  const heartbeat = new HeartbeatPublisher(redis, keys, log, {
    component: 'cacher',
    instance: config.instanceId,
    intervalMs: config.heartbeatMs,
    info: async () => {
      const counts = await diffQueue.getJobCounts('wait', 'active', 'delayed', 'failed');
      for (const [state, n] of Object.entries(counts)) queueDepth.set({ state }, n);
      return { building, queue: counts, lastBuild, format: config.snapshotFormat };
    },
  });

  /**
   * Enqueues another build of a generation whose files were gone while they were read, after a pause that
   * doubles while it keeps happening (a file that stays gone is in the monitor's next diff; until then this
   * only retries).
   */
  const deferrals = new Map<string, number>();
  /** The last build-again job of each table: one is pending at a time. */
  const againJobs = new Map<string, string>();
  async function buildAgain(table: string, gen: number): Promise<void> {
    // A build deferred while a build-again job is still to come (a reconcile's or a diff's build, deferred too)
    // adds none: each would start a chain of its own, and while a file stays gone (a data folder unmounted, so the
    // monitor reports nothing) the chains would pile up, one more every reconcile, building ever more often.
    const pending = againJobs.get(table);
    if (pending && ['delayed', 'waiting', 'prioritized'].includes(await diffQueue.getJobState(pending))) return;
    const n = deferrals.get(table) ?? 0;
    deferrals.set(table, n + 1);
    const diff: ScanDiff = { v: 1, table, gen, at: Date.now(), added: [], removed: [], modified: [], renamed: [], files: 0 };
    // A new id every time: BullMQ adds nothing under the id of a job it still holds (running, or kept as done).
    const jobId = `${table}-${gen}-again-${n}-${randomUUID().slice(0, 8)}`;
    againJobs.set(table, jobId);
    await diffQueue.add('scan-diff', diff, {
      jobId,
      delay: Math.min(BUILD_AGAIN_MS * 2 ** n, BUILD_AGAIN_MAX_MS),
      removeOnComplete: 100,
      removeOnFail: 100,
      attempts: 10,
      backoff: { type: 'exponential', delay: 500 },
    });
  }

  async function buildWithLease(table: string): Promise<RebuildResult | 'busy'> {
    const lease = new Lease(redis, { owner: keys.tableBuildLease(table), epoch: keys.tableBuildEpoch(table) }, config.leaseMs, config.instanceId);
    if (!(await lease.tryAcquire())) return 'busy';
    // Renewed, never taken again: a lease that expired (a stall) or vanished (Redis lost its data) makes the
    // publish refuse this build, which may have read a manifest and parts that are gone.
    const renewal = lease.keepRenewed(
      () => log.warn({ table }, 'build lease lost while building; this build will not be published'),
      (err) => log.warn({ err, table }, 'build lease renewal failed'),
    );
    building += 1;
    try {
      const keepPart = (t: string, part: { id: string }, file: string) => cacheOf(t).adopt(part, file);
      const result = await rebuildTable({ redis, keys, config, log, exportQueue, reader, buildAgain, keepPart }, table, lease);
      rebuildsTotal.inc({ outcome: result.outcome });
      if (result.outcome !== 'deferred') {
        deferrals.delete(table);
        againJobs.delete(table);
      }
      if (result.outcome === 'published') {
        rebuildSeconds.observe(result.ms / 1000);
        snapshotBytes.set({ table }, result.bytes);
        snapshotParts.set({ table }, result.parts);
        partBytesWritten.inc(result.written);
        mergeSoon(table);
        snapshotRows.set({ table }, result.rows);
        snapshotVersion.set({ table }, result.version);
        fileErrors.set({ table }, result.errors);
        partsReused.inc(result.partsReused);
        lastBuild = { table, ...result, at: Date.now() };
      } else if (result.outcome === 'dropped') {
        for (const g of [snapshotBytes, snapshotParts, snapshotRows, snapshotVersion, fileErrors]) g.remove({ table });
        await caches.get(table)?.retain(new Set());
        caches.delete(table);
      }
      heartbeat.touch();
      return result;
    } finally {
      building -= 1;
      renewal.stop();
      await lease.release().catch(() => undefined);
    }
  }

  /**
   * Background merges: after a table's build, its small parts are merged (one table at a time per cacher,
   * again while there is more to merge). A merge failing is logged and tried again after the next build.
   */
  const mergeWanted = new Set<string>();
  let merging: Promise<void> | null = null;
  let stoppingMerges = false;
  const policy = { maxParts: config.mergeMaxParts, maxBytes: config.mergeMaxBytes, excludedShare: 0.25 };
  function mergeSoon(table: string): void {
    if (!config.merge) return;
    mergeWanted.add(table);
    merging ??= (async () => {
      while (mergeWanted.size && !stoppingMerges) {
        const next = [...mergeWanted][0]!;
        mergeWanted.delete(next);
        try {
          const r = await mergeTable({ redis, keys, config, log, exportQueue, cache: cacheOf, policy }, next);
          mergesTotal.inc({ outcome: r.outcome });
          if (r.outcome === 'merged') {
            snapshotParts.set({ table: next }, r.parts);
            snapshotVersion.set({ table: next }, r.version);
            partBytesWritten.inc(r.bytes);
            mergeWanted.add(next);
            heartbeat.touch();
          }
          const current = await currentParts(redis, keys, next);
          await cacheOf(next).retain(new Set(current.map((p) => p.id)));
        } catch (err) {
          mergesTotal.inc({ outcome: 'failed' });
          log.warn({ err, table: next }, 'merge failed; the table keeps its parts until the next try');
        }
      }
    })().finally(() => {
      merging = null;
    });
  }

  const supervised = superviseWorker({
    name: QUEUES.scanDiffs,
    queue: diffQueue,
    log,
    stallMs: config.queueStallMs,
    connect: () => createRedis(config, 'worker', log, 'cacher-worker'),
    attach: (w) => {
      w.on('failed', (job, err) => log.warn({ jobId: job?.id, err: { message: err.message } }, 'scan diff job failed'));
      w.on('error', (err) => log.warn({ err: { message: err.message } }, 'cacher worker error'));
    },
    processor: async (job: Job, token?: string) => {
      const d = decode(ScanDiff, job.data);
      if (!d.ok) {
        badMessages.inc();
        log.error({ jobId: job.id, error: d.error }, 'bad scan diff; dead-lettered and skipped');
        await deadLetters.add('scan-diff', { queue: QUEUES.scanDiffs, jobId: job.id, data: job.data as unknown, error: d.error });
        return { outcome: 'bad-message' };
      }
      const diff = d.value;
      if (job.attemptsMade === 0) jobLatency.observe(Math.max(0, Date.now() - diff.at) / 1000);
      const result = await buildWithLease(diff.table);
      if (result === 'busy') {
        // Another cacher is building this table: come back when it is likely done.
        await job.moveToDelayed(Date.now() + 250, token);
        throw new DelayedError();
      }
      if (result.outcome === 'refused') throw new Error(`publishing ${diff.table} was refused (lease lost); retrying`);
      return result;
    },
    workerOptions: { prefix: keys.bullPrefix, concurrency: config.concurrency, stalledInterval: 15_000, maxStalledCount: 100 },
  });

  let reconciling: Promise<void> | null = null;
  async function reconcileOnce(): Promise<void> {
    const tables = await redis.smembers(keys.tables);
    for (const table of tables) {
      const [gen, built] = await Promise.all([redis.hget(keys.tableState(table), 'gen'), redis.hget(keys.tableMeta(table), 'sourceGen')]);
      if (gen !== null && Number(gen) > Number(built ?? -1)) {
        // Bucketed id: repeated reconciles of one lag enqueue one job per interval at most.
        const bucket = Math.floor(Date.now() / Math.max(config.reconcileMs, 1_000));
        const diff: ScanDiff = { v: 1, table, gen: Number(gen), at: Date.now(), added: [], removed: [], modified: [], renamed: [], files: 0 };
        await diffQueue.add('scan-diff', diff, { jobId: `${table}-${gen}-reconcile-${bucket}`, removeOnComplete: 100, removeOnFail: 100, attempts: 10, backoff: { type: 'exponential', delay: 500 } });
      }
      // Collection takes the build lease: no build may claim a part while it is being deleted.
      const lease = new Lease(redis, { owner: keys.tableBuildLease(table), epoch: keys.tableBuildEpoch(table) }, config.leaseMs, config.instanceId);
      if (await lease.tryAcquire()) {
        try {
          await collectRetired(redis, keys, table, config.retainMs, Date.now(), config.retention);
        } finally {
          await lease.release().catch(() => undefined);
        }
      }
      mergeSoon(table);
    }
  }
  const reconcile = () => {
    reconciling ??= reconcileOnce()
      .catch((err: unknown) => log.warn({ err }, 'reconcile failed'))
      .finally(() => {
        reconciling = null;
      });
    return reconciling;
  };
  const timer = setInterval(() => void reconcile(), config.reconcileMs);
  heartbeat.start();
  await supervised.waitUntilReady();
  void reconcile();
  log.info({ format: config.snapshotFormat, concurrency: config.concurrency }, 'cacher started');

  let stopping: Promise<void> | undefined;
  return {
    name: 'cacher',
    reconcile,
    readiness(): Readiness {
      return redis.status === 'ready' ? { ready: true } : { ready: false, reason: `redis ${redis.status}` };
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        stoppingMerges = true;
        await merging;
        // Worker.close waits for the running build: it either publishes or leaves the diff to be redone.
        await supervised.close();
        await reconciling;
        await heartbeat.stop();
        await Promise.all([diffQueue.close(), exportQueue.close(), deadLetters.close()]);
        await reader.close();
        await closeRedis(queueConn);
        await closeRedis(redis);
        await rm(config.workDir, { recursive: true, force: true });
        log.info('cacher stopped');
      })();
      return stopping;
    },
  };
}
