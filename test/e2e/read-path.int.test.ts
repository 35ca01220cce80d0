import { appendFile, copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AppProcess,
  TEST_REDIS_URL,
  deletePrefix,
  freePort,
  removeDir,
  rows,
  tempDir,
  uniquePrefix,
  waitFor,
  writeAtomic,
  flashduckEnv,
} from '../helpers.js';

/**
 * The read path across real processes: monitor, cacher and two query-api replicas share one Redis
 * (a unique prefix) and a temp data folder, exactly as separate deployments would.
 */
describe('read path end to end (separate processes)', () => {
  const prefix = uniquePrefix('e2e');
  let dataDir: string;
  let work: string;
  let ports: number[];
  const procs: AppProcess[] = [];
  let env: Record<string, string>;

  const both = async (sql: string) => {
    const [a, b] = await Promise.all(ports.map((p) => rows(p, sql)));
    return { a, b };
  };
  /** Waits until both replicas answer `sql` with `expected`. */
  const converge = async (what: string, sql: string, expected: unknown, timeoutMs = 30_000) =>
    waitFor(
      what,
      async () => {
        const { a, b } = await both(sql);
        return JSON.stringify(a) === JSON.stringify(expected) && JSON.stringify(b) === JSON.stringify(expected) ? a : undefined;
      },
      timeoutMs,
      150,
    );
  const tableInfo = async (port: number, table: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/tables/${table}`);
    return (await res.json()) as { version: number; rows: number; files: { path: string }[]; errors: { file: string; message: string }[]; columns: { name: string; type: string }[] };
  };

  beforeAll(async () => {
    dataDir = await tempDir('e2e-data');
    work = await tempDir('e2e-work');
    ports = [await freePort(), await freePort()];
    env = {
      ...flashduckEnv(prefix, dataDir, work),
      MONITOR_POLL_MS: '200',
      MONITOR_SETTLE_MS: '150',
      CACHER_LEASE_MS: '2000',
      CACHER_RECONCILE_MS: '500',
      QUERY_API_REFRESH_MS: '500',
    };
    procs.push(AppProcess.start('monitor', env));
    procs.push(AppProcess.start('cacher', env));
    for (const port of ports) procs.push(AppProcess.start('query-api', { ...env, QUERY_API_PORT: String(port) }));
    await Promise.all(procs.map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|query-api listening)"/)));
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
    await removeDir(work);
  });

  it('merges a CSV, a Parquet and an NDJSON file of one table by column name, on both replicas', async () => {
    await mkdir(path.join(dataDir, 'sales'));
    await writeAtomic(path.join(dataDir, 'sales', 'a.csv'), 'id,amount,region\n1,10.5,eu\n2,20,us\n');
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    await conn.run(
      `COPY (SELECT * FROM (VALUES (3, 30.25, 'apac', DATE '2024-05-01'), (4, 40, 'eu', DATE '2024-05-02')) t(id, amount, region, shipped)) TO '${path.join(work, 'b.parquet')}' (FORMAT parquet)`,
    );
    conn.closeSync();
    db.closeSync();
    await copyFile(path.join(work, 'b.parquet'), path.join(dataDir, 'sales', '.b.parquet.tmp'));
    await rename(path.join(dataDir, 'sales', '.b.parquet.tmp'), path.join(dataDir, 'sales', 'b.parquet'));
    await writeAtomic(path.join(dataDir, 'sales', 'c.ndjson'), '{"id": 5, "amount": 50, "channel": "web"}\n');

    const merged = await converge('merged rows', 'SELECT id, amount, region, shipped, channel FROM sales ORDER BY id', [
      { id: 1, amount: 10.5, region: 'eu', shipped: null, channel: null },
      { id: 2, amount: 20, region: 'us', shipped: null, channel: null },
      { id: 3, amount: 30.25, region: 'apac', shipped: '2024-05-01', channel: null },
      { id: 4, amount: 40, region: 'eu', shipped: '2024-05-02', channel: null },
      { id: 5, amount: 50, region: null, shipped: null, channel: 'web' },
    ]);
    expect(merged).toHaveLength(5);
    const info = await tableInfo(ports[0]!, 'sales');
    expect(info.columns.map((c) => c.name)).toEqual(['id', 'amount', 'region', 'shipped', 'channel']);
    expect(info.files.map((f) => f.path)).toEqual(['sales/a.csv', 'sales/b.parquet', 'sales/c.ndjson']);
    expect(info.errors).toEqual([]);
  });

  it('sees an in-place modification (same name, new content)', async () => {
    await appendFile(path.join(dataDir, 'sales', 'a.csv'), '6,60,us\n');
    await converge('appended row', 'SELECT count(*) AS n, sum(amount) AS total FROM sales', [{ n: 6, total: 210.75 }]);
  });

  it('sees a deleted file', async () => {
    await rm(path.join(dataDir, 'sales', 'c.ndjson'));
    await converge('deleted file gone', 'SELECT count(*) AS n FROM sales WHERE id = 5', [{ n: 0 }]);
  });

  it('sees a renamed file, keeping its rows', async () => {
    await rename(path.join(dataDir, 'sales', 'a.csv'), path.join(dataDir, 'sales', 'z.csv'));
    await waitFor('renamed file listed', async () => {
      const info = await tableInfo(ports[1]!, 'sales');
      return info.files.some((f) => f.path === 'sales/z.csv') && !info.files.some((f) => f.path === 'sales/a.csv');
    });
    const { a, b } = await both('SELECT count(*) AS n FROM sales');
    expect(a).toEqual([{ n: 5 }]);
    expect(b).toEqual([{ n: 5 }]);
  });

  it('reports a malformed file by name and keeps serving the rest of the table', async () => {
    const before = await tableInfo(ports[0]!, 'sales');
    await writeAtomic(path.join(dataDir, 'sales', 'broken.parquet'), 'this is not parquet');
    const info = await waitFor('error reported', async () => {
      const t = await tableInfo(ports[0]!, 'sales');
      return t.errors.length ? t : undefined;
    });
    expect(info.errors).toHaveLength(1);
    expect(info.errors[0]!.file).toBe('sales/broken.parquet');
    expect(info.errors[0]!.message.length).toBeGreaterThan(5);
    expect(info.version).toBeGreaterThan(before.version);
    const { a, b } = await both('SELECT count(*) AS n FROM sales');
    expect(a).toEqual([{ n: 5 }]);
    expect(b).toEqual([{ n: 5 }]);
  });

  it('converges after the cacher is killed with SIGKILL in the middle of a rebuild', async () => {
    const cacher = procs.find((p) => p.app === 'cacher')!;
    // A file large enough that its rebuild takes a while.
    const lines = ['id,amount,region'];
    for (let i = 0; i < 400_000; i++) lines.push(`${1000 + i},${i % 97},r${i % 13}`);
    await writeFile(path.join(work, 'big.csv'), `${lines.join('\n')}\n`);
    const started = cacher.logs.length;
    await copyFile(path.join(work, 'big.csv'), path.join(dataDir, 'sales', '.big.tmp'));
    await rename(path.join(dataDir, 'sales', '.big.tmp'), path.join(dataDir, 'sales', 'big.csv'));
    await waitFor('rebuild started', () => cacher.logs.slice(started).some((l) => l.includes('"msg":"rebuild started"')), 20_000, 10);
    await cacher.kill('SIGKILL');
    expect(cacher.logs.slice(started).some((l) => l.includes('"msg":"snapshot published"') && l.includes('"rows":400005'))).toBe(false);

    const restarted = AppProcess.start('cacher', env);
    procs.push(restarted);
    try {
      await converge('table converged after cacher restart', 'SELECT count(*) AS n FROM sales', [{ n: 400_005 }], 60_000);
    } catch (err) {
      console.log(restarted.logs.join('\n').slice(-5000));
      throw err;
    }
    const info = await tableInfo(ports[1]!, 'sales');
    expect(info.files.map((f) => f.path).sort()).toEqual(['sales/b.parquet', 'sales/big.csv', 'sales/broken.parquet', 'sales/z.csv']);
  }, 90_000);

  it('answers a second table beside the first, and drops a table whose files are all gone', async () => {
    await writeAtomic(path.join(dataDir, 'tiny.csv'), 'k\n1\n');
    await converge('tiny table', 'SELECT k FROM tiny', [{ k: 1 }]);
    await rm(path.join(dataDir, 'tiny.csv'));
    await waitFor('tiny dropped on both replicas', async () => {
      const res = await Promise.all(ports.map((p) => fetch(`http://127.0.0.1:${p}/v1/tables/tiny`)));
      return res.every((r) => r.status === 404);
    });
  });
});
