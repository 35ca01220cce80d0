import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { DelayedError, Queue, type Job } from 'bullmq';
import { superviseWorker } from '@flashduck/core/queue';
import {
  HeartbeatPublisher,
  Lease,
  QUEUES,
  SnapshotEvent,
  closeRedis,
  counter,
  createKeys,
  createRedis,
  decode,
  errorMessage,
  exportedVersionOf,
  gauge,
  histogram,
  type Component,
  isTableGone,
  recordExportFailure,
  type Logger,
  type Readiness,
  type TableMeta,
  ownDirIn,
} from '@flashduck/core';
import type { ExporterConfig } from './config.js';
import { KeptDuckDB, exportTable, readMeta, removeExport, removePartCache, type ExportResult } from './export-table.js';

const exportsTotal = counter('flashduck_exporter_exports_total', 'Exports by outcome', ['outcome']);
const exportSeconds = histogram('flashduck_exporter_export_duration_seconds', 'Time to write one export', [], [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120]);
const exportedVersion = gauge('flashduck_exporter_exported_version', 'Snapshot version of the current export', ['table']);
const exportBytes = gauge('flashduck_exporter_export_bytes', 'Size of the current export', ['table']);
const queueDepth = gauge('flashduck_exporter_queue_depth', 'Snapshot events waiting for the exporter', ['state']);

export interface ExporterDeps {
  readonly config: ExporterConfig;
  readonly log: Logger;
}

export interface Exporter extends Component {
  /** Exports (or removes) every table whose export is behind its snapshot; also runs on a timer. */
  reconcile(): Promise<void>;
}

/**
 * Writes `<export dir>/<table>.parquet` for every table from its snapshot events (a BullMQ queue fed by
 * the cacher). Per table, an event waits until no newer snapshot has come for EXPORTER_DEBOUNCE_MS, then
 * exports whatever is current, so a burst is exported once and the last snapshot always is. One export per
 * table at a time across replicas (a lease, checked again right before the file is replaced).
 */
export async function startExporter(deps: ExporterDeps): Promise<Exporter> {
  // Scratch space, the part cache and the kept pieces in a folder of this instance's own under EXPORTER_WORK_DIR.
  const config: ExporterConfig = { ...deps.config, workDir: await ownDirIn(deps.config.workDir) };
  const log = deps.log.child({ component: 'exporter' });
  const keys = createKeys(config.prefix);
  const redis = createRedis(config, 'worker', log, 'exporter');
  const queueConn = createRedis(config, 'worker', log, 'exporter-queue');
  const queue = new Queue(QUEUES.snapshots, { connection: queueConn, prefix: keys.bullPrefix });
  await mkdir(config.exportDir, { recursive: true });
  const kept = new KeptDuckDB({ memoryLimitMb: config.memoryLimitMb, tempDir: path.join(config.workDir, 'duckdb') });
  const options = { compression: config.compression, rowGroupSize: config.rowGroupSize, workDir: config.workDir, memoryLimitMb: config.memoryLimitMb, kept };
  let last: Record<string, unknown> = {};
  /** When the reconcile loop and the queue worker last did something (shown in the heartbeat). */
  const activity = { reconcileStartedAt: 0, reconcileEndedAt: 0, jobAt: 0 };
  // A table that keeps changing is still exported at least this often.
  const maxWaitMs = Math.max(5 * config.debounceMs, 10_000);

  const heartbeat = new HeartbeatPublisher(redis, keys, log, {
    component: 'exporter',
    instance: config.instanceId,
    intervalMs: config.heartbeatMs,
    info: async () => {
      const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'failed');
      for (const [state, n] of Object.entries(counts)) queueDepth.set({ state }, n);
      return { exportDir: config.exportDir, compression: config.compression, queue: counts, last, activity };
    },
  });

  async function withLease<T>(table: string, fn: (lease: Lease) => Promise<T>): Promise<T | 'busy'> {
    const lease = new Lease(redis, { owner: keys.tableExportLease(table), epoch: keys.tableExportEpoch(table) }, config.leaseMs, config.instanceId);
    if (!(await lease.tryAcquire())) return 'busy';
    // Renewed, never taken again: an export whose lease lapsed (a stall, Redis losing its data) does not replace
    // the file (mayReplace asks the holder); the job is retried and reads the table's version afresh.
    const renewal = lease.keepRenewed(
      () => log.warn({ table }, 'export lease lost while exporting; this export will not replace the file'),
      (err) => log.warn({ err, table }, 'export lease renewal failed'),
    );
    try {
      return await fn(lease);
    } finally {
      renewal.stop();
      await lease.release().catch(() => undefined);
    }
  }

  async function exportNow(meta: TableMeta): Promise<ExportResult | 'busy' | 'current'> {
    return await withLease(meta.table, async (lease) => {
      // Another replica may have exported it while we waited for the lease.
      if ((await exportedVersionOf(redis, keys, meta.table)) >= meta.version) return 'current' as const;
      const result = await exportTable({ redis, keys, log, exportDir: config.exportDir, options }, meta, async () => (await lease.holder())?.startsWith(`${lease.token}|`) ?? false).catch(
        async (err: unknown) => {
          // Shown by the status until an export of the table is written; the previous export stays in place.
          await recordExportFailure(redis, keys, meta.table, meta.version, errorMessage(err)).catch(() => undefined);
          throw err;
        },
      );
      exportsTotal.inc({ outcome: 'written' });
      exportSeconds.observe(result.ms / 1000);
      exportedVersion.set({ table: meta.table }, meta.version);
      exportBytes.set({ table: meta.table }, result.bytes);
      last = { ...result, at: Date.now() };
      heartbeat.touch();
      log.info(
        { ...result, compression: config.compression },
        'export written',
      );
      return result;
    });
  }

  async function dropNow(table: string): Promise<'busy' | boolean> {
    if (config.keepDropped) return false;
    return await withLease(table, async () => {
      // Re-check under the lease: the table may have come back. Only a table the folder lost is removed, never
      // one Redis forgot (it lost its data: the monitor records the folder again and the table is rebuilt).
      if (!(await isTableGone(redis, keys, table))) return false;
      const removed = await removeExport(redis, keys, config.exportDir, table);
      await removePartCache(config.workDir, table);
      exportedVersion.remove({ table });
      exportBytes.remove({ table });
      if (removed) {
        exportsTotal.inc({ outcome: 'removed' });
        log.info({ table }, 'export removed (the table has no files left)');
      }
      return removed;
    });
  }

  const supervised = superviseWorker({
    name: QUEUES.snapshots,
    queue,
    log,
    stallMs: config.queueStallMs,
    connect: () => createRedis(config, 'worker', log, 'exporter-worker'),
    attach: (w) => {
      w.on('failed', (job, err) => {
        exportsTotal.inc({ outcome: 'failed' });
        log.warn({ jobId: job?.id, err: { message: err.message } }, 'export failed; retrying');
      });
      w.on('error', (err) => log.warn({ err: { message: err.message } }, 'exporter worker error'));
    },
    processor: async (job: Job, token?: string) => {
      activity.jobAt = Date.now();
      const d = decode(SnapshotEvent, job.data);
      if (!d.ok) {
        log.error({ jobId: job.id, error: d.error }, 'bad snapshot event; skipped');
        return { outcome: 'bad-message' };
      }
      const { table } = d.value;
      const meta = await readMeta(redis, keys, table);
      const delay = async (until: number) => {
        await job.moveToDelayed(until, token);
        throw new DelayedError();
      };
      if (!meta) {
        const r = await dropNow(table);
        if (r === 'busy') await delay(Date.now() + 500);
        return { outcome: r ? 'removed' : 'nothing to remove' };
      }
      if ((await exportedVersionOf(redis, keys, table)) >= meta.version) return { outcome: 'current' };
      // Debounce: wait until the table has been quiet for the window (its newest snapshot decides).
      const quietAt = meta.updatedAt + config.debounceMs;
      if (Date.now() < quietAt && Date.now() - job.timestamp < maxWaitMs) await delay(quietAt);
      const r = await exportNow(meta);
      if (r === 'busy') await delay(Date.now() + 500);
      return r === 'current' ? { outcome: 'current' } : { outcome: 'written', version: meta.version };
    },
    workerOptions: { prefix: keys.bullPrefix, concurrency: 1, stalledInterval: 15_000, maxStalledCount: 100 },
  });

  let reconciling: Promise<void> | null = null;
  async function reconcileOnce(): Promise<void> {
    activity.reconcileStartedAt = Date.now();
    const tables = new Set(await redis.smembers(keys.tables));
    const bucket = Math.floor(Date.now() / Math.max(config.reconcileMs, 1_000));
    for (const table of tables) {
      const meta = await readMeta(redis, keys, table);
      if (meta && (await exportedVersionOf(redis, keys, table)) < meta.version) {
        await queue.add('snapshot', { v: 1, type: 'snapshot', table, version: meta.version, at: Date.now() } satisfies SnapshotEvent, {
          jobId: `${table}-v${meta.version}-r${bucket}`,
          removeOnComplete: 100,
          removeOnFail: 100,
          attempts: 10,
          backoff: { type: 'exponential', delay: 1_000 },
        });
      }
    }
    // Exports of tables that no longer exist (all their files deleted).
    if (!config.keepDropped) {
      let entries: string[] = [];
      try {
        entries = await readdir(config.exportDir);
      } catch {
        entries = [];
      }
      for (const e of entries) {
        const m = /^([a-z_][a-z0-9_]*)\.parquet$/.exec(e);
        if (m && !tables.has(m[1]!) && !(await readMeta(redis, keys, m[1]!))) await dropNow(m[1]!);
      }
    }
  }
  const reconcile = () => {
    reconciling ??= reconcileOnce()
      .catch((err: unknown) => log.warn({ err: { message: errorMessage(err) } }, 'export reconcile failed'))
      .finally(() => {
        activity.reconcileEndedAt = Date.now();
        reconciling = null;
      });
    return reconciling;
  };
  const timer = setInterval(() => void reconcile(), config.reconcileMs);
  heartbeat.start();
  await supervised.waitUntilReady();
  void reconcile();
  log.info({ exportDir: config.exportDir, compression: config.compression, debounceMs: config.debounceMs }, 'exporter started');

  let stopping: Promise<void> | undefined;
  return {
    name: 'exporter',
    reconcile,
    readiness: (): Readiness => (redis.status === 'ready' ? { ready: true } : { ready: false, reason: `redis ${redis.status}` }),
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        // Worker.close waits for the export in flight: it is renamed into place, or left to be redone.
        await supervised.close();
        await reconciling;
        await heartbeat.stop();
        await queue.close();
        await closeRedis(queueConn);
        await closeRedis(redis);
        kept.close();
        await rm(config.workDir, { recursive: true, force: true });
        log.info('exporter stopped');
      })();
      return stopping;
    },
  };
}
