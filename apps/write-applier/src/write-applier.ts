import {
  HeartbeatPublisher,
  Lease,
  LuaScript,
  ScanHint,
  TableMeta,
  WRITE_GROUP,
  WriteEntry,
  WriteState,
  closeRedis,
  counter,
  createKeys,
  createRedis,
  cleanDuckDBMessage,
  decode,
  encode,
  gauge,
  histogram,
  type Component,
  type Keys,
  type Logger,
  type Readiness,
  type RedisClient,
} from '@flashduck/core';
import type { WriteApplierConfig } from './config.js';
import type { Write } from './apply/effects.js';
import { ConcurrentEditError, LeaseLostError, applyWrites } from './apply/apply-writes.js';
import { WriteRefusedError, checkTypes } from './apply/rewrite.js';

const commitScript = LuaScript.load('write-commit-4');

const appliedTotal = counter('flashduck_writer_writes_applied_total', 'Writes applied to the data files');
const rowsTotal = counter('flashduck_writer_rows_applied_total', 'Rows of applied writes');
const deadTotal = counter('flashduck_writer_writes_dead_lettered_total', 'Writes moved to the dead-letter stream', ['reason']);
const batchSeconds = histogram('flashduck_writer_batch_duration_seconds', 'Time to apply one batch to the files', [], [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30]);
const lagGauge = gauge('flashduck_writer_consumer_lag', 'Entries not yet delivered to the appliers', ['table']);
const pendingGauge = gauge('flashduck_writer_pending', 'Entries delivered but not yet acknowledged', ['table']);

type StreamReply = [string, [string, string[]][]][] | null;

interface Delivered {
  readonly id: string;
  readonly fields: string[];
  readonly deliveries: number;
}

/** Compares stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}

function decodeEntry(fields: string[]): { ok: true; value: WriteEntry } | { ok: false; error: string } {
  const obj: Record<string, unknown> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) obj[fields[i]!] = fields[i + 1];
  try {
    return decode(WriteEntry, {
      v: Number(obj.v),
      op: obj.op,
      key: JSON.parse(String(obj.key)) as unknown,
      rows: JSON.parse(String(obj.rows)) as unknown,
      at: Number(obj.at),
    });
  } catch (err) {
    return { ok: false, error: `unreadable entry: ${cleanDuckDBMessage(err)}` };
  }
}

export interface WriteApplierDeps {
  readonly config: WriteApplierConfig;
  readonly log: Logger;
}

export interface WriteApplier extends Component {
  /** Processes every table with work once (also runs on wake-ups and a timer). */
  drain(): Promise<void>;
}

/**
 * Applies queued writes to the data files. Per table, one applier at a time holds the apply lease and
 * takes entries strictly in stream order: first entries a dead applier left pending (claimed once idle
 * for WRITER_CLAIM_IDLE_MS), then new ones. A batch is written to the files (temp, fsync, rename, folder
 * fsync), then one fenced script records the last applied id, marks the writes applied and XACKs them.
 * An entry already at or below the recorded id is only acknowledged, so a replay changes nothing.
 */
export async function startWriteApplier(deps: WriteApplierDeps): Promise<WriteApplier> {
  const { config } = deps;
  const log = deps.log.child({ component: 'write-applier' });
  const keys: Keys = createKeys(config.prefix);
  const redis: RedisClient = createRedis(config, 'worker', log, 'write-applier');
  const subscriber = createRedis(config, 'subscriber', log, 'write-applier-wake');
  const consumer = config.instanceId;
  const leases = new Map<string, Lease>();
  const groups = new Set<string>();
  const lastErrors = new Map<string, string>();
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  let lastBatch: Record<string, unknown> = {};

  const heartbeat = new HeartbeatPublisher(redis, keys, log, {
    component: 'write-applier',
    instance: config.instanceId,
    intervalMs: config.heartbeatMs,
    info: () => ({ batchSize: config.batchSize, tables: [...leases.keys()], lastBatch }),
  });

  const leaseOf = (table: string) => {
    let l = leases.get(table);
    if (!l) {
      l = new Lease(redis, { owner: keys.tableApplyLease(table), epoch: keys.tableApplyEpoch(table) }, config.leaseMs, consumer);
      leases.set(table, l);
    }
    return l;
  };

  async function ensureGroup(table: string): Promise<void> {
    if (groups.has(table)) return;
    try {
      await redis.xgroup('CREATE', keys.tableWrites(table), WRITE_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!cleanDuckDBMessage(err).includes('BUSYGROUP')) throw err;
    }
    groups.add(table);
  }

  async function readMeta(table: string): Promise<TableMeta | undefined> {
    const raw = await redis.hget(keys.tableMeta(table), 'json');
    if (!raw) return undefined;
    const d = decode(TableMeta, raw);
    return d.ok ? d.value : undefined;
  }

  /** Acknowledges entries with their new states, if the lease is still ours. */
  async function commit(table: string, lease: Lease, lastApplied: string, states: [string, string][]): Promise<void> {
    const n = Number(
      await commitScript.run(
        redis,
        [keys.tableApplyLease(table), keys.tableWritesApplied(table), keys.tableWriteState(table), keys.tableWrites(table)],
        [lease.token, WRITE_GROUP, lastApplied, ...states.flat()],
      ),
    );
    if (n < 0) throw new LeaseLostError(`lost the apply lease of table ${table} before committing`);
  }

  async function stateOf(table: string, id: string): Promise<WriteState | null> {
    const raw = await redis.hget(keys.tableWriteState(table), id);
    const d = raw ? decode(WriteState, raw) : null;
    return d?.ok ? d.value : null;
  }

  async function deadLetter(table: string, lease: Lease, entry: Delivered, reason: string): Promise<void> {
    await redis.xadd(keys.tableWritesDead(table), '*', 'id', entry.id, 'reason', reason, 'deliveries', String(entry.deliveries), 'at', String(Date.now()), ...entry.fields);
    const prev = await stateOf(table, entry.id);
    const d = decodeEntry(entry.fields);
    const state: WriteState = {
      v: 1,
      status: 'failed',
      op: prev?.op ?? (d.ok ? d.value.op : 'upsert'),
      rows: prev?.rows ?? (d.ok ? d.value.rows.length : 0),
      at: prev?.at ?? Date.now(),
      error: reason,
    };
    await commit(table, lease, '', [[entry.id, encode(WriteState, state)]]);
    deadTotal.inc({ reason: reason.startsWith('failed ') ? 'retries' : 'refused' });
    lastErrors.delete(entry.id);
    log.warn({ table, id: entry.id, reason }, 'write dead-lettered');
  }

  async function deliveries(table: string, ids: string[]): Promise<Map<string, number>> {
    if (ids.length === 0) return new Map();
    const rows = (await redis.xpending(keys.tableWrites(table), WRITE_GROUP, ids[0]!, ids[ids.length - 1]!, ids.length + 10, consumer)) as [string, string, number, number][];
    return new Map(rows.map((r) => [r[0], Number(r[3])]));
  }

  /** The next entries of a table for this applier, oldest first; null when others still hold older ones. */
  async function nextBatch(table: string): Promise<Delivered[] | null> {
    const stream = keys.tableWrites(table);
    // Entries of an applier that died: taken over once idle long enough (its lease has expired by then).
    let cursor = '0-0';
    do {
      const res = (await redis.xautoclaim(stream, WRITE_GROUP, consumer, config.claimIdleMs, cursor, 'COUNT', config.batchSize)) as [string, unknown[], string[]?];
      cursor = res[0];
    } while (cursor !== '0-0');
    const summary = (await redis.xpending(stream, WRITE_GROUP)) as [number, string | null, string | null, [string, string][] | null];
    const others = (summary[3] ?? []).filter(([name]) => name !== consumer).reduce((n, [, c]) => n + Number(c), 0);
    if (others > 0) return null; // older entries still belong to another applier: order comes first
    let reply = (await redis.xreadgroup('GROUP', WRITE_GROUP, consumer, 'COUNT', config.batchSize, 'STREAMS', stream, '0')) as StreamReply;
    let own = reply?.[0]?.[1] ?? [];
    let counts = await deliveries(table, own.map(([id]) => id));
    if (own.length === 0) {
      reply = (await redis.xreadgroup('GROUP', WRITE_GROUP, consumer, 'COUNT', config.batchSize, 'STREAMS', stream, '>')) as StreamReply;
      own = reply?.[0]?.[1] ?? [];
      counts = new Map(own.map(([id]) => [id, 1]));
    }
    return own.map(([id, fields]) => ({ id, fields, deliveries: counts.get(id) ?? 1 }));
  }

  async function applyBatch(table: string, lease: Lease, batch: Delivered[]): Promise<void> {
    const applied = (await redis.get(keys.tableWritesApplied(table))) ?? '0-0';
    const replayed = batch.filter((e) => compareIds(e.id, applied) <= 0);
    if (replayed.length) {
      // Applied before a crash, not yet acknowledged: acknowledging is all that is left.
      await commit(table, lease, '', replayed.map((e) => [e.id, '']));
    }
    const meta = await readMeta(table);
    const tableTypes = new Map((meta?.columns ?? []).map((c) => [c.name.toLowerCase(), { name: c.name, type: c.type }]));
    const todo: { entry: Delivered; write: Write }[] = [];
    for (const e of batch) {
      if (compareIds(e.id, applied) <= 0) continue;
      if (e.deliveries > config.maxDeliveries) {
        await deadLetter(table, lease, e, `failed ${e.deliveries - 1} times; last error: ${lastErrors.get(e.id) ?? 'unknown (the applier stopped while applying it)'}`);
        continue;
      }
      const d = decodeEntry(e.fields);
      if (!d.ok) {
        await deadLetter(table, lease, e, d.error);
        continue;
      }
      const typeError = d.value.op === 'upsert' ? checkTypes(d.value.rows, tableTypes) : null;
      if (typeError) {
        await deadLetter(table, lease, e, `refused: ${typeError}`);
        continue;
      }
      todo.push({ entry: e, write: { id: e.id, op: d.value.op, key: d.value.key, rows: d.value.rows } });
    }
    if (todo.length === 0) return;

    const applyDeps = { dataDir: config.dataDir, workDir: config.workDir, log, stillLeased: async () => (await lease.holder())?.startsWith(`${lease.token}|`) ?? false };
    const run = async (items: typeof todo) => {
      const started = Date.now();
      const files = await applyWrites(applyDeps, table, items.map((i) => i.write), meta);
      const now = Date.now();
      const states: [string, string][] = [];
      for (const { entry, write } of items) {
        const prev = await stateOf(table, entry.id);
        const state: WriteState = { v: 1, status: 'applied', op: write.op, rows: write.rows.length, at: prev?.at ?? now, appliedAt: now, files: files.map((f) => ({ path: f.path, mtimeMs: f.mtimeMs })) };
        states.push([entry.id, encode(WriteState, state)]);
      }
      const last = items[items.length - 1]!.entry.id;
      await commit(table, lease, last, states);
      // The replaced files are complete: the monitor may read them at once instead of waiting a poll and the settle window.
      const hint: ScanHint = { v: 1, files: files.map((f) => ({ path: f.path, fingerprint: f.fingerprint })) };
      await redis.publish(keys.scanHints, encode(ScanHint, hint));
      // Everything up to the applied id is acknowledged (entries are taken in order): the stream keeps the rest.
      await redis.xtrim(keys.tableWrites(table), 'MINID', '~', last);
      const rows = items.reduce((n, i) => n + i.write.rows.length, 0);
      appliedTotal.inc(items.length);
      rowsTotal.inc(rows);
      batchSeconds.observe((now - started) / 1000);
      lastBatch = { table, writes: items.length, rows, files: files.length, ms: now - started, at: now };
      log.info({ table, writes: items.length, rows, files: files.map((f) => f.path), ms: now - started, last: items[items.length - 1]!.entry.id }, 'writes applied');
    };
    try {
      await run(todo);
    } catch (err) {
      if (err instanceof LeaseLostError || err instanceof ConcurrentEditError) throw err;
      if (todo.length === 1) {
        // Retrying cannot help a refused write: it goes to the dead letters now, and the writes after it go on.
        if (err instanceof WriteRefusedError) return void (await deadLetter(table, lease, todo[0]!.entry, `refused: ${err.message}`));
        lastErrors.set(todo[0]!.entry.id, cleanDuckDBMessage(err));
        throw err;
      }
      // One entry may be poison: apply them one by one so the others still go through, in order.
      log.warn({ table, err: { message: cleanDuckDBMessage(err) }, writes: todo.length }, 'batch failed; applying its writes one at a time');
      for (const item of todo) {
        try {
          await run([item]);
        } catch (e) {
          if (e instanceof LeaseLostError || e instanceof ConcurrentEditError) throw e;
          lastErrors.set(item.entry.id, cleanDuckDBMessage(e));
          // A write that fails on its own after the batch failed will not succeed by retrying: dead-letter it.
          await deadLetter(table, lease, { ...item.entry, deliveries: item.entry.deliveries }, `refused: ${cleanDuckDBMessage(e)}`);
        }
      }
    }
  }

  /** Works through one table while it has entries; returns true if anything was done. */
  async function drainTable(table: string): Promise<boolean> {
    const lease = leaseOf(table);
    if (!(await lease.tryAcquire())) return false;
    // Renewed while batches run, however long one takes: a batch rewriting a large file can outlast the TTL, and a
    // lease left to lapse mid-batch would make the batch refuse and start over, forever. Never taken again: once
    // lost, each batch's fenced steps refuse and the next holder continues.
    const renewal = lease.keepRenewed(
      () => log.warn({ table }, 'apply lease lost; another applier continues this table'),
      (err) => log.warn({ err, table }, 'apply lease renewal failed'),
    );
    let worked = false;
    try {
      await ensureGroup(table);
      for (;;) {
        if (stopped) break;
        const batch = await nextBatch(table);
        if (!batch || batch.length === 0) break;
        await applyBatch(table, lease, batch);
        worked = true;
        heartbeat.touch();
        if (renewal.lost) break;
      }
    } catch (err) {
      const message = cleanDuckDBMessage(err);
      if (err instanceof ConcurrentEditError) log.info({ table, reason: message }, 'redoing the batch');
      else if (message.includes('NOGROUP')) {
        // Redis lost the stream and its group (it lost its data): writes queued there are gone; the group is
        // made again so the writes queued from now on are applied.
        groups.delete(table);
        log.warn({ table }, 'the writes stream or its consumer group is gone (Redis lost its data); creating it again');
      } else log.warn({ table, err: { message } }, 'applying writes failed; retrying');
    } finally {
      renewal.stop();
      await lease.release().catch(() => undefined);
    }
    return worked;
  }

  let lastHousekeeping = 0;
  /** Forgets the states of finished writes older than WRITER_STATUS_RETAIN_MS (pending ones stay). */
  async function forgetOldStates(tables: string[]): Promise<void> {
    const now = Date.now();
    if (now - lastHousekeeping < Math.min(60_000, config.statusRetainMs)) return;
    lastHousekeeping = now;
    for (const table of tables) {
      let cursor = '0';
      do {
        const [next, flat] = await redis.hscan(keys.tableWriteState(table), cursor, 'COUNT', 500);
        cursor = next;
        const old: string[] = [];
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const d = decode(WriteState, flat[i + 1]!);
          if (d.ok && d.value.status !== 'pending' && d.value.at < now - config.statusRetainMs) old.push(flat[i]!);
        }
        if (old.length) await redis.hdel(keys.tableWriteState(table), ...old);
      } while (cursor !== '0');
    }
  }

  async function updateGauges(tables: string[]): Promise<void> {
    for (const table of tables) {
      try {
        const groupsInfo = (await redis.xinfo('GROUPS', keys.tableWrites(table))) as unknown[][];
        for (const g of groupsInfo) {
          const info: Record<string, unknown> = {};
          for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1];
          if (info.name !== WRITE_GROUP) continue;
          pendingGauge.set({ table }, Number(info.pending ?? 0));
          if (info.lag !== null && info.lag !== undefined) lagGauge.set({ table }, Number(info.lag));
        }
      } catch {
        /* stream not created yet */
      }
    }
  }

  function drain(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          const tables = await redis.smembers(keys.writeTables);
          for (const table of tables) {
            if (stopped) break;
            if (await drainTable(table)) again = true;
          }
          await updateGauges(tables);
          await forgetOldStates(tables);
        } catch (err) {
          log.warn({ err: { message: cleanDuckDBMessage(err) } }, 'write loop failed; retrying');
        }
      } while (again && !stopped);
    })().finally(() => {
      running = null;
    });
    return running;
  }

  subscriber.on('message', () => void drain());
  await subscriber.subscribe(keys.writesChannel);
  const timer = setInterval(() => void drain(), config.pollMs);
  heartbeat.start();
  void drain();
  log.info({ batchSize: config.batchSize, claimIdleMs: config.claimIdleMs, maxDeliveries: config.maxDeliveries }, 'write-applier started');

  let stopping: Promise<void> | undefined;
  return {
    name: 'write-applier',
    drain,
    readiness: (): Readiness => (redis.status === 'ready' ? { ready: true } : { ready: false, reason: `redis ${redis.status}` }),
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearInterval(timer);
        // The batch in flight finishes (files and commit) or, if cut off, is replayed by the next applier.
        await running;
        await heartbeat.stop();
        await closeRedis(subscriber);
        await closeRedis(redis);
        log.info('write-applier stopped');
      })();
      return stopping;
    },
  };
}
