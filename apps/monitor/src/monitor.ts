import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { Queue } from 'bullmq';
import {
  FileFingerprint,
  HeartbeatPublisher,
  IgnoredFiles,
  Lease,
  LuaScript,
  QUEUES,
  ScanDiff,
  ScanHint,
  closeRedis,
  counter,
  createKeys,
  createRedis,
  decode,
  encode,
  gauge,
  histogram,
  type Component,
  type Keys,
  type Logger,
  type Readiness,
  type RedisClient,
  type ScannedFile,
  walkDataDir,
  beginFolderRecord,
  completeFolderRecord,
  readFolderRecord,
} from '@flashduck/core';
import type { MonitorConfig } from './config.js';
import { diffManifests, isEmptyDiff, keepUnlisted } from './scan/diff.js';
import { SettleTracker } from './scan/settle.js';

const applyManifest = LuaScript.load('manifest-apply-2');

const scansTotal = counter('flashduck_monitor_scans_total', 'Scans of the data dir', ['result']);
const scanSeconds = histogram('flashduck_monitor_scan_duration_seconds', 'Duration of one scan of the data dir');
const diffsTotal = counter('flashduck_monitor_diffs_published_total', 'Scan diffs published (one per changed table)');
const filesGauge = gauge('flashduck_monitor_files', 'Data files per table', ['table']);
const leaderGauge = gauge('flashduck_monitor_leader', '1 when this monitor holds the leader lease');
const pendingGauge = gauge('flashduck_monitor_unsettled_files', 'Files still being written (waiting for the settle window)');

const stateLost = counter('flashduck_monitor_redis_state_lost_total', 'Times Redis had lost the folder record and every table was recorded again');

type Manifest = Map<string, FileFingerprint>;

/** A table whose folder changed during a scan is listed again after this long. */
const RELIST_MS = 20;
/** Consecutive changing listings of one table between two warnings. */
const RELIST_WARN_EVERY = 100;

export interface MonitorDeps {
  readonly config: MonitorConfig;
  readonly log: Logger;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** The running monitor. */
export interface Monitor extends Component {
  /** Runs one scan now (when leader); resolves when its diffs are published. */
  scanNow(): Promise<void>;
  readonly isLeader: boolean;
}

/**
 * Scans the data dir, and for every table whose files changed publishes one durable scan diff
 * (manifest update in Redis + a BullMQ job for the cacher). Only the leader-lease holder scans, so
 * two monitors never double-publish; a new leader re-reads the manifests from Redis and so misses
 * nothing that changed during the hand-over.
 */
export async function startMonitor(deps: MonitorDeps): Promise<Monitor> {
  const { config } = deps;
  const log = deps.log.child({ component: 'monitor' });
  const now = deps.now ?? Date.now;
  const keys: Keys = createKeys(config.prefix);
  const redis: RedisClient = createRedis(config, 'worker', log, 'monitor');
  const queueConn = createRedis(config, 'worker', log, 'monitor-queue');
  const queue = new Queue(QUEUES.scanDiffs, {
    connection: queueConn,
    prefix: keys.bullPrefix,
    defaultJobOptions: { removeOnComplete: 1_000, removeOnFail: 10_000, attempts: 10, backoff: { type: 'exponential', delay: 500 } },
  });
  const lease = new Lease(redis, { owner: keys.leaseOwner('monitor'), epoch: keys.leaseEpoch('monitor') }, config.leaseMs, config.instanceId);
  const settle = new SettleTracker(config.settleMs);
  let manifests: Map<string, Manifest> | null = null;
  const relisted = new Map<string, number>();
  let leader = false;
  let lastScan = { at: 0, ms: 0, files: 0, tables: 0, unsettled: 0 };
  let lastIgnored: string | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let rerun = false;
  let watcher: FSWatcher | undefined;

  const heartbeat = new HeartbeatPublisher(redis, keys, log, {
    component: 'monitor',
    instance: config.instanceId,
    intervalMs: config.heartbeatMs,
    info: () => ({ role: leader ? 'leader' : 'standby', ...lastScan, pollMs: config.pollMs, watch: config.watch }),
  });

  async function loadManifests(): Promise<Map<string, Manifest>> {
    const tables = await redis.smembers(keys.tables);
    const out = new Map<string, Manifest>();
    for (const table of tables) {
      const raw = await redis.hgetall(keys.tableFiles(table));
      const m: Manifest = new Map();
      for (const [p, json] of Object.entries(raw)) {
        const d = decode(FileFingerprint, json);
        // An unreadable entry is treated as absent, so the next scan rewrites it.
        if (d.ok) m.set(p, d.value);
      }
      out.set(table, m);
    }
    return out;
  }

  async function publish(table: string, before: Manifest, after: Manifest): Promise<boolean> {
    const diff = diffManifests(before, after);
    if (isEmptyDiff(diff)) return true;
    const removed = [...diff.removed, ...diff.renamed.map((r) => r.from)];
    const set: string[] = [];
    for (const p of [...diff.added, ...diff.modified, ...diff.renamed.map((r) => r.to)]) {
      set.push(p, JSON.stringify(after.get(p)));
    }
    const gen = Number(
      await applyManifest.run(redis, [keys.tableFiles(table), keys.tableState(table)], [lease.epoch, now(), removed.length, ...removed, ...set]),
    );
    if (gen < 0) {
      log.warn({ table }, 'a newer monitor leader has written this table; stepping down');
      leader = false;
      return false;
    }
    await redis.sadd(keys.tables, table);
    const msg: ScanDiff = { v: 1, table, gen, at: now(), ...diff, files: after.size };
    await queue.add('scan-diff', JSON.parse(encode(ScanDiff, msg)) as ScanDiff, { jobId: `${table}-${gen}` });
    diffsTotal.inc();
    log.info(
      { table, gen, added: diff.added.length, removed: diff.removed.length, modified: diff.modified.length, renamed: diff.renamed.length },
      'scan diff published',
    );
    return true;
  }

  async function scanOnce(): Promise<void> {
    if (!(await lease.tryAcquire())) {
      if (leader) log.info('lost the monitor lease; standing by');
      leader = false;
      manifests = null;
      leaderGauge.set(0);
      return;
    }
    if (!leader || !manifests) {
      manifests = await loadManifests();
      leader = true;
      leaderGauge.set(1);
      log.info({ epoch: lease.epoch, tables: manifests.size }, 'monitor lease acquired; scanning');
      // Status should show the new role now, not at the next beat.
      void heartbeat.beat().catch(() => undefined);
    }
    // Redis is a cache of the folder: without a complete record (a first start, or Redis lost its data) every
    // table is recorded again, diffed against what Redis holds now (nothing, after a loss).
    const record = await readFolderRecord(redis, keys);
    let recording: string | null = null;
    if (record.state !== 'complete') {
      const known = manifests.size;
      manifests = await loadManifests();
      if (record.state === 'missing' && known > 0 && manifests.size === 0) {
        stateLost.inc();
        log.warn({ tables: known }, 'Redis holds no record of the folder (it lost its data): recording every table again');
      } else log.info({ record: record.state, tables: manifests.size }, 'recording the folder in Redis');
      recording = randomUUID();
      await beginFolderRecord(redis, keys, recording, now());
    }
    const started = now();
    const { files, refused, ignored, changing, everyTableChanging } = await walkDataDir(config.dataDir);
    // Said where users look (the table's status, `flashduck status`) rather than nowhere; written when it changes.
    const ignoredJson = JSON.stringify(ignored.slice(0, 1_000));
    if (ignoredJson !== lastIgnored || recording) {
      await redis.set(keys.ignoredFiles, encode(IgnoredFiles, { v: 1, files: ignored.slice(0, 1_000), total: ignored.length, at: now() }));
      lastIgnored = ignoredJson;
    }
    const t = now();
    const current = new Map<string, Manifest>();
    const present = new Set<string>();
    let unsettled = 0;
    let nextSettle = Number.POSITIVE_INFINITY;
    const add = (f: ScannedFile, fp: FileFingerprint) => {
      let m = current.get(f.table);
      if (!m) current.set(f.table, (m = new Map<string, FileFingerprint>()));
      m.set(f.path, fp);
    };
    for (const f of [...files, ...refused]) {
      present.add(f.path);
      if (f.fingerprint.refused || settle.isSettled(f.path, f.fingerprint, t)) {
        add(f, f.fingerprint);
        continue;
      }
      unsettled += 1;
      nextSettle = Math.min(nextSettle, settle.settlesAt(f.path, f.fingerprint));
      // Still being written: keep serving the version recorded before, if any.
      const old = manifests.get(f.table)?.get(f.path);
      if (old) add(f, old);
    }
    settle.retain(present, t);
    let unstable = 0;
    for (const table of new Set([...manifests.keys(), ...current.keys()])) {
      const before = manifests.get(table) ?? new Map<string, FileFingerprint>();
      let after = current.get(table) ?? new Map<string, FileFingerprint>();
      if (everyTableChanging || changing.has(table)) {
        // Its folder changed while it was listed: a file moved or renamed meanwhile may be missing from the
        // listing although it is there. What the listing shows is recorded (new and changed files go on), but a
        // recorded file it lacks stays recorded until a listing that nothing changed during says it is gone.
        after = keepUnlisted(before, after);
        const n = (relisted.get(table) ?? 0) + 1;
        relisted.set(table, n);
        if (n % RELIST_WARN_EVERY === 0) log.warn({ table, listings: n }, 'the folder of this table changes during every listing; deleted files stay recorded until one is stable');
        unstable += 1;
      } else relisted.delete(table);
      if (!(await publish(table, before, after))) return;
      if (after.size) manifests.set(table, after);
      else manifests.delete(table);
      filesGauge.set({ table }, after.size);
    }
    if (recording) {
      if (await completeFolderRecord(redis, keys, recording)) log.info({ tables: manifests.size }, 'folder recorded in Redis');
    }
    const ms = now() - started;
    lastScan = { at: t, ms, files: files.length, tables: current.size, unsettled };
    scanSeconds.observe(ms / 1000);
    pendingGauge.set(unsettled);
    heartbeat.touch();
    if (Number.isFinite(nextSettle)) schedule(Math.max(10, nextSettle - now() + 5));
    if (unstable) schedule(RELIST_MS);
  }

  let timerAt = Number.POSITIVE_INFINITY;
  /** Schedules the next scan; an earlier one already scheduled (a file about to settle) is kept. */
  function schedule(delayMs: number): void {
    if (stopped) return;
    const delay = Math.min(delayMs, leader ? config.pollMs : Math.min(config.pollMs, config.leaseMs / 3));
    const at = Date.now() + delay;
    if (timer && at >= timerAt) return;
    clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timer = undefined;
      timerAt = Number.POSITIVE_INFINITY;
      void trigger();
    }, delay);
  }

  function trigger(): Promise<void> {
    if (running) {
      rerun = true;
      return running;
    }
    running = (async () => {
      do {
        rerun = false;
        try {
          await scanOnce();
          scansTotal.inc({ result: 'ok' });
        } catch (err) {
          scansTotal.inc({ result: 'error' });
          log.warn({ err }, 'scan failed; retrying at the next poll');
        }
      } while (rerun && !stopped);
    })().finally(() => {
      running = null;
      schedule(config.pollMs);
    });
    return running;
  }

  // Files a write-applier replaced atomically are complete: read them now, without the settle wait.
  const hints = createRedis(config, 'subscriber', log, 'monitor-hints');
  hints.on('message', (_channel: string, message: string) => {
    const d = decode(ScanHint, message);
    if (!d.ok) return;
    for (const f of d.value.files) settle.markComplete(f.path, f.fingerprint, now());
    void trigger();
  });
  await hints.subscribe(keys.scanHints);

  if (config.watch) {
    try {
      let debounce: NodeJS.Timeout | undefined;
      watcher = watch(config.dataDir, { recursive: true }, () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => void trigger(), 50);
      });
      watcher.on('error', (err) => log.warn({ err }, 'file watch failed; polling continues'));
    } catch (err) {
      log.warn({ err }, 'file watch unavailable; polling only');
    }
  }

  heartbeat.start();
  await trigger();
  log.info({ dataDir: config.dataDir, pollMs: config.pollMs, settleMs: config.settleMs, watch: config.watch }, 'monitor started');

  let stopping: Promise<void> | undefined;
  return {
    name: 'monitor',
    get isLeader() {
      return leader;
    },
    scanNow: () => trigger(),
    readiness(): Readiness {
      return redis.status === 'ready' ? { ready: true } : { ready: false, reason: `redis ${redis.status}` };
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearTimeout(timer);
        watcher?.close();
        await running;
        if (leader) await lease.release().catch(() => undefined);
        await heartbeat.stop();
        await queue.close();
        await closeRedis(hints);
        await closeRedis(queueConn);
        await closeRedis(redis);
        log.info('monitor stopped');
      })();
      return stopping;
    },
  };
}
