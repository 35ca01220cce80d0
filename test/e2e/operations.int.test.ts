import { copyFile, mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { WRITE_GROUP, createKeys } from '@flashduck/core';
import { enqueueWrite } from '@flashduck/query-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, TEST_REDIS_URL, deletePrefix, freePort, removeDir, rowsOnDisk, tempDir, uniquePrefix, waitFor, writeAtomic, flashduckEnv } from '../helpers.js';

/** Metrics an operator needs, by component (each must be exposed, even before it has a value). */
const METRICS: Record<string, string[]> = {
  monitor: ['flashduck_monitor_scans_total', 'flashduck_monitor_scan_duration_seconds', 'flashduck_monitor_files', 'flashduck_monitor_diffs_published_total', 'flashduck_monitor_leader', 'flashduck_redis_reconnects_total'],
  cacher: ['flashduck_cacher_rebuilds_total', 'flashduck_cacher_rebuild_duration_seconds', 'flashduck_cacher_snapshot_bytes', 'flashduck_cacher_snapshot_rows', 'flashduck_cacher_snapshot_version', 'flashduck_cacher_queue_depth', 'flashduck_cacher_job_latency_seconds', 'flashduck_redis_reconnects_total'],
  'query-api': ['flashduck_query_requests_total', 'flashduck_query_duration_seconds', 'flashduck_http_errors_total', 'flashduck_query_writes_enqueued_total', 'flashduck_query_served_version', 'flashduck_redis_reconnects_total'],
  exporter: ['flashduck_exporter_exports_total', 'flashduck_exporter_export_duration_seconds', 'flashduck_exporter_exported_version', 'flashduck_exporter_queue_depth', 'flashduck_redis_reconnects_total'],
  'write-applier': ['flashduck_writer_writes_applied_total', 'flashduck_writer_rows_applied_total', 'flashduck_writer_writes_dead_lettered_total', 'flashduck_writer_consumer_lag', 'flashduck_writer_pending', 'flashduck_redis_reconnects_total'],
};
const PORT_VAR: Record<string, string> = {
  monitor: 'MONITOR_METRICS_PORT',
  cacher: 'CACHER_METRICS_PORT',
  'query-api': 'QUERY_API_PORT',
  exporter: 'EXPORTER_METRICS_PORT',
  'write-applier': 'WRITE_APPLIER_METRICS_PORT',
};

async function bigParquet(file: string, rows: number): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run(`COPY (SELECT range AS id, md5(range::VARCHAR) AS v, random() AS x FROM range(${rows})) TO '${file}' (FORMAT parquet)`);
  conn.closeSync();
  db.closeSync();
}

describe('operating the components', () => {
  const prefix = uniquePrefix('ops');
  const keys = createKeys(prefix);
  let dataDir: string;
  let work: string;
  let env: Record<string, string>;
  let redis: Redis;
  const procs = new Map<string, AppProcess>();
  const ports = new Map<string, number>();

  const start = (name: string) => {
    const p = AppProcess.start(name, { ...env, [PORT_VAR[name]!]: String(ports.get(name)) });
    procs.set(name, p);
    return p;
  };
  /** Sends SIGTERM and returns the exit code and how long the exit took. */
  const terminate = async (name: string) => {
    const t0 = Date.now();
    const code = await procs.get(name)!.kill('SIGTERM');
    return { code, ms: Date.now() - t0 };
  };

  beforeAll(async () => {
    dataDir = await tempDir('ops-data');
    work = await tempDir('ops-work');
    redis = new Redis(TEST_REDIS_URL);
    for (const name of Object.keys(METRICS)) ports.set(name, await freePort());
    env = {
      ...flashduckEnv(prefix, dataDir, work),
      FLASHDUCK_SHUTDOWN_MS: '15000',
      MONITOR_POLL_MS: '100',
      MONITOR_SETTLE_MS: '50',
      CACHER_LEASE_MS: '2000',
      CACHER_RECONCILE_MS: '500',
      EXPORTER_DEBOUNCE_MS: '0',
      EXPORTER_RECONCILE_MS: '500',
      WRITER_CLAIM_IDLE_MS: '500',
      WRITER_LEASE_MS: '1000',
    };
    for (const name of Object.keys(METRICS)) start(name);
    await Promise.all([...procs.values()].map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|query-api listening|exporter started|write-applier started)"/)));
  });
  afterAll(async () => {
    await Promise.all([...procs.values()].map((p) => p.kill('SIGKILL')));
    redis.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
    await removeDir(work);
  });

  it.each(Object.keys(METRICS))('%s answers /healthz, /readyz and /metrics with the metrics operators need', async (name) => {
    const base = `http://127.0.0.1:${ports.get(name)}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await waitFor(`${name} ready`, async () => (await fetch(`${base}/readyz`)).status === 200, 10_000);
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const metric of METRICS[name]!) expect(text, `${name}: ${metric}`).toContain(`# HELP ${metric} `);
    expect(text).toContain('flashduck_process_cpu_seconds_total');
  });

  it('cacher: SIGTERM during a rebuild exits 0 within the deadline, and the table ends complete', async () => {
    await mkdir(path.join(dataDir, 'big'));
    await writeAtomic(path.join(dataDir, 'big', 'small.csv'), 'id,v,x\n-1,a,0.5\n');
    await waitFor('small built', async () => (await redis.hget(keys.tableMeta('big'), 'version')) !== null, 20_000);
    await bigParquet(path.join(work, 'big.parquet'), 1_500_000);
    const cacher = procs.get('cacher')!;
    const before = cacher.logs.length;
    await copyFile(path.join(work, 'big.parquet'), path.join(dataDir, 'big', '.big.tmp'));
    await rename(path.join(dataDir, 'big', '.big.tmp'), path.join(dataDir, 'big', 'big.parquet'));
    await waitFor('rebuild with the big file started', () => cacher.logs.slice(before).some((l) => l.includes('"msg":"rebuild started"') && l.includes('"files":2')), 20_000, 10);
    expect(cacher.logs.slice(before).some((l) => l.includes('"msg":"snapshot published"') && l.includes('"files":2'))).toBe(false);
    const { code, ms } = await terminate('cacher');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(15_000);
    start('cacher');
    await waitFor('table complete', async () => JSON.parse((await redis.hget(keys.tableMeta('big'), 'json')) ?? '{}').rows === 1_500_001, 60_000, 200);
  }, 120_000);

  it('exporter: SIGTERM during an export exits 0 and leaves a valid, complete export', async () => {
    const exportDir = path.join(work, 'exports');
    await waitFor('export of the big table', async () => (await redis.hget(keys.tableExported('big'), 'rows')) === '1500001', 60_000, 100);
    await writeAtomic(path.join(dataDir, 'big', 'more.csv'), 'id,v,x\n-2,b,0.25\n');
    await waitFor('new export started', async () => (await readdir(exportDir)).some((f) => f.startsWith('.big.parquet.tmp-')), 30_000, 5);
    const { code, ms } = await terminate('exporter');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(15_000);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const n = Number((await conn.runAndReadAll(`SELECT count(*) FROM read_parquet('${path.join(exportDir, 'big.parquet')}')`)).getRowsJS()[0]![0]);
    conn.closeSync();
    db.closeSync();
    expect([1_500_001, 1_500_002]).toContain(n);
    start('exporter');
    await waitFor('export current', async () => (await redis.hget(keys.tableExported('big'), 'rows')) === '1500002', 60_000, 200);
    expect((await readdir(exportDir)).filter((f) => f.startsWith('.'))).toEqual([]);
  }, 120_000);

  it('write-applier: SIGTERM during a batch exits 0; every write ends applied exactly once', async () => {
    await mkdir(path.join(dataDir, 'ledger'));
    await writeFile(path.join(dataDir, 'ledger', 'base.csv'), `id,n\n${Array.from({ length: 50_000 }, (_, i) => `${i},0`).join('\n')}\n`);
    await redis.sadd(keys.writeTables, 'ledger');
    const expected = new Map<number, number>(Array.from({ length: 50_000 }, (_, i) => [i, 0]));
    let last = '';
    for (let w = 1; w <= 60; w++) {
      const rows = Array.from({ length: 500 }, (_, k) => ({ id: (w * 997 + k * 13) % 60_000, n: w }));
      for (const r of rows) expected.set(r.id, r.n);
      last = (await enqueueWrite(redis, keys, 'ledger', 'upsert', { key: ['id'], rows })).writeId.slice('ledger.'.length);
    }
    const applier = procs.get('write-applier')!;
    await waitFor('a batch applied', () => applier.logs.some((l) => l.includes('"msg":"writes applied"') && l.includes('"table":"ledger"')), 30_000, 10);
    const { code, ms } = await terminate('write-applier');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(15_000);
    start('write-applier');
    await waitFor('all writes applied', async () => {
      const pending = (await redis.xpending(keys.tableWrites('ledger'), WRITE_GROUP)) as [number];
      return (await redis.get(keys.tableWritesApplied('ledger'))) === last && Number(pending[0]) === 0;
    }, 60_000, 200);
    const onDisk = await rowsOnDisk(path.join(dataDir, 'ledger'));
    expect(onDisk).toHaveLength(expected.size);
    expect(new Map(onDisk.map((r) => [Number(r.id), Number(r.n)]))).toEqual(expected);
  }, 120_000);

  it('monitor and query-api: SIGTERM exits 0 promptly', async () => {
    for (const name of ['monitor', 'query-api']) {
      const { code, ms } = await terminate(name);
      expect(code, name).toBe(0);
      expect(ms, name).toBeLessThan(15_000);
    }
  });
});
