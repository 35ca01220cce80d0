import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFile, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { WRITE_GROUP, createKeys } from '@flashduck/core';
import { redisAnswers } from '@flashduck/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, compareStreamIds, csvFolderRows, freePort, parquetRowCount, query, removeDir, rowsOnDisk, tempDir, waitFor, writeAtomic } from '../helpers.js';

const LOAD_MS = Number(process.env.FAULTS_LOAD_MS ?? 24_000);
const ROLES = ['monitor', 'monitor', 'cacher', 'cacher', 'query-api', 'exporter', 'write-applier', 'write-applier'] as const;
type Role = (typeof ROLES)[number];

let seed = 20261122;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every file under a folder (recursively), names relative to it. */
async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, p)));
    else out.push(p);
  }
  return out;
}

describe('faults: SIGKILL of every component under load, and a Redis restart', () => {
  let work: string;
  let dataDir: string;
  let exportDir: string;
  let redisDir: string;
  let redisPort: number;
  let redisProc: ChildProcess | null = null;
  let writePort: number;
  let readPort: number;
  let env: Record<string, string>;
  const prefix = 'fdfaults';
  const keys = createKeys(prefix);
  const procs = new Map<string, { role: Role; proc: AppProcess }>();
  let started = 0;
  /** The query-api that takes writes is not killed: its 202 answers are the acknowledgements counted. */
  let writeApiId = '';

  const startRedis = async () => {
    redisProc = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--dir', redisDir, '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
    await waitFor('redis up', () => redisAnswers(`redis://127.0.0.1:${redisPort}`, 200), 10_000, 50);
  };
  const stopRedis = async () => {
    const exited = new Promise((r) => redisProc?.once('exit', r));
    spawnSync('redis-cli', ['-p', String(redisPort), 'shutdown']);
    await exited;
  };
  const startRole = (role: Role, extra: Record<string, string> = {}) => {
    started += 1;
    const id = `${role}-${started}`;
    const proc = AppProcess.start(role, { ...env, FLASHDUCK_INSTANCE_ID: id, ...extra });
    procs.set(id, { role, proc });
    return proc;
  };

  beforeAll(async () => {
    work = await tempDir('faults');
    dataDir = path.join(work, 'data');
    exportDir = path.join(work, 'exports');
    redisDir = path.join(work, 'redis');
    await mkdir(path.join(dataDir, 'churn'), { recursive: true });
    await mkdir(path.join(dataDir, 'ledger'), { recursive: true });
    await mkdir(redisDir, { recursive: true });
    await writeFile(path.join(dataDir, 'ledger', 'base.csv'), `id,v\n${Array.from({ length: 200 }, (_, i) => `${i},base-${i}`).join('\n')}\n`);
    await writeFile(path.join(dataDir, 'churn', 'seed.csv'), 'k,n\nseed,0\n');
    redisPort = await freePort();
    writePort = await freePort();
    readPort = await freePort();
    await startRedis();
    env = {
      FLASHDUCK_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      FLASHDUCK_PREFIX: prefix,
      FLASHDUCK_DATA_DIR: dataDir,
      FLASHDUCK_EXPORT_DIR: exportDir,
      FLASHDUCK_SHUTDOWN_MS: '10000',
      MONITOR_POLL_MS: '200',
      MONITOR_SETTLE_MS: '100',
      MONITOR_LEASE_MS: '1500',
      CACHER_LEASE_MS: '1500',
      CACHER_RECONCILE_MS: '500',
      CACHER_WORK_DIR: path.join(work, 'cacher'),
      EXPORTER_DEBOUNCE_MS: '300',
      EXPORTER_LEASE_MS: '1500',
      EXPORTER_RECONCILE_MS: '500',
      EXPORTER_WORK_DIR: path.join(work, 'exporter'),
      WRITER_CLAIM_IDLE_MS: '500',
      WRITER_LEASE_MS: '1000',
      WRITER_POLL_MS: '100',
      WRITER_MAX_DELIVERIES: '1000',
      WRITER_WORK_DIR: path.join(work, 'writer'),
      QUERY_API_HOST: '127.0.0.1',
      QUERY_API_CACHE_DIR: path.join(work, 'cache'),
      QUERY_API_REFRESH_MS: '300',
    };
    for (const role of ROLES) if (role !== 'query-api') startRole(role);
    // Writes go through one query-api (its answers are the acknowledgements); queries through another, which is killed.
    startRole('query-api', { QUERY_API_PORT: String(writePort) });
    writeApiId = `query-api-${started}`;
    startRole('query-api', { QUERY_API_PORT: String(readPort) });
    await waitFor('ledger served', async () => (await query(readPort, 'SELECT count(*) AS n FROM ledger')).body.rows?.[0]?.n === 200, 60_000, 200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([...procs.values()].map((p) => p.proc.kill('SIGKILL')));
    if (redisProc && redisProc.exitCode === null) await stopRedis();
    await removeDir(work);
  });

  it('converges: snapshots equal the folder, every acknowledged write applied once, exports current, no temp files', async () => {
    const acked: { writeId: string; op: 'upsert' | 'delete'; rows: { id: number; v?: string }[]; key: string }[] = [];
    /** The last write acknowledged before the Redis restart, sent again after it with its Idempotency-Key. */
    let retried: { first: string; again: { writeId: string; replayed: string | null } } | undefined;
    const send = (op: 'upsert' | 'delete', rows: { id: number; v?: string }[], key: string) =>
      fetch(`http://127.0.0.1:${writePort}/v1/tables/ledger/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ key: ['id'], rows }) });
    const stats = { churnOps: 0, writesSent: 0, writesAcked: 0, writesRefused: 0, queries: 0, queryErrors: 0, kills: 0, redisRestarts: 0 };
    const killed = new Set<Role>();
    let writesPaused = false;
    const until = Date.now() + LOAD_MS;

    const churn = (async () => {
      let n = 0;
      while (Date.now() < until) {
        const files = (await readdir(path.join(dataDir, 'churn'))).filter((f) => f.endsWith('.csv'));
        const op = files.length < 3 ? 'create' : pick(['create', 'append', 'append', 'delete'] as const);
        if (op === 'create' || files.length === 0) await writeAtomic(path.join(dataDir, 'churn', `f${n++}.csv`), `k,n\nk${n}-0,${n}\n`);
        else if (op === 'append') await appendFile(path.join(dataDir, 'churn', pick(files)), `k${n++}-a,${n}\n`);
        else await rm(path.join(dataDir, 'churn', pick(files.filter((f) => f !== 'seed.csv').concat('seed.csv'))), { force: true });
        stats.churnOps += 1;
        await sleep(250);
      }
    })();

    const writes = (async () => {
      let i = 0;
      while (Date.now() < until) {
        if (writesPaused) {
          await sleep(50);
          continue;
        }
        const op = rand() < 0.7 ? 'upsert' : 'delete';
        const rows = Array.from({ length: 3 }, () => {
          const id = Math.floor(rand() * 220);
          return op === 'upsert' ? { id, v: `w${i}` } : { id };
        });
        i += 1;
        stats.writesSent += 1;
        try {
          const key = `faults-${i}`;
          const res = await send(op, rows, key);
          if (res.status === 202) {
            acked.push({ writeId: ((await res.json()) as { writeId: string }).writeId, op, rows, key });
            stats.writesAcked += 1;
          } else stats.writesRefused += 1;
        } catch {
          stats.writesRefused += 1;
        }
        await sleep(80);
      }
    })();

    const queries = (async () => {
      while (Date.now() < until) {
        try {
          const r = await query(readPort, 'SELECT count(*) AS n FROM churn');
          if (r.status === 200) stats.queries += 1;
          else stats.queryErrors += 1;
        } catch {
          stats.queryErrors += 1;
        }
        await sleep(150);
      }
    })();

    const killer = (async () => {
      const order = [...new Set(ROLES)].sort(() => rand() - 0.5);
      let k = 0;
      await sleep(1500);
      while (Date.now() < until - 2000) {
        if (stats.redisRestarts === 0 && Date.now() > until - LOAD_MS / 2) {
          writesPaused = true;
          await sleep(300);
          await stopRedis();
          await sleep(1500);
          await startRedis();
          stats.redisRestarts += 1;
          // A client retrying its last write across the restart (AOF): answered again, queued once.
          const last = acked[acked.length - 1];
          if (last) {
            const again = await waitFor('the last write answered again after the restart', async () => {
              const res = await send(last.op, last.rows, last.key);
              return res.status === 202 ? { writeId: ((await res.json()) as { writeId: string }).writeId, replayed: res.headers.get('idempotent-replayed') } : undefined;
            });
            retried = { first: last.writeId, again };
          }
          writesPaused = false;
          continue;
        }
        const role = order[k++ % order.length]!;
        const candidates = [...procs.entries()].filter(([id, p]) => p.role === role && p.proc.alive && id !== writeApiId);
        const victim = candidates[Math.floor(rand() * candidates.length)];
        if (victim) {
          await victim[1].proc.kill('SIGKILL');
          procs.delete(victim[0]);
          stats.kills += 1;
          killed.add(role);
          await sleep(200);
          startRole(role, role === 'query-api' ? { QUERY_API_PORT: String(readPort) } : {});
        }
        await sleep(1200 + rand() * 800);
      }
    })();

    await Promise.all([churn, writes, queries, killer]);

    // Convergence: the folder, the writes and the exports, as they are now.
    await waitFor('churn snapshot equals the folder', async () => {
      const expected = await csvFolderRows(path.join(dataDir, 'churn'));
      const served = await query(readPort, 'SELECT k, n FROM churn ORDER BY k, n');
      return served.status === 200 && JSON.stringify(served.body.rows) === JSON.stringify(expected);
    }, 120_000, 500);

    const last = acked[acked.length - 1]!.writeId.split('.')[1]!;
    const redis = new Redis(env.FLASHDUCK_REDIS_URL!);
    try {
      await waitFor('every acknowledged write applied', async () => {
        const applied = await redis.get(keys.tableWritesApplied('ledger'));
        const pending = (await redis.xpending(keys.tableWrites('ledger'), WRITE_GROUP)) as [number];
        return applied !== null && compareStreamIds(applied, last) >= 0 && Number(pending[0]) === 0;
      }, 120_000, 500);
      const reference = new Map<number, string>(Array.from({ length: 200 }, (_, i) => [i, `base-${i}`]));
      for (const w of [...acked].sort((a, b) => compareStreamIds(a.writeId.split('.')[1]!, b.writeId.split('.')[1]!))) {
        for (const r of w.rows) {
          if (w.op === 'delete') reference.delete(r.id);
          else reference.set(r.id, r.v!);
        }
      }
      const onDisk = (await rowsOnDisk(path.join(dataDir, 'ledger'))).map((r) => [Number(r.id), String(r.v)] as const);
      const mismatches = onDisk.filter(([id, v]) => reference.get(id) !== v).length + Math.abs(onDisk.length - reference.size);
      const states = await redis.hgetall(keys.tableWriteState('ledger'));
      const notApplied = acked.filter((w) => !(states[w.writeId.split('.')[1]!] ?? '').includes('"status":"applied"')).length;

      // The last writes reach the files before the snapshot: wait for the served ledger to be the files' (else an
      // export of the version before them would count as current).
      await waitFor('the ledger served as its files hold it', async () => (await query(writePort, 'SELECT count(*) AS n FROM ledger')).body.rows?.[0]?.n === reference.size, 60_000, 200);
      await waitFor('exports current', async () => {
        for (const t of ['churn', 'ledger']) {
          const meta = JSON.parse((await redis.hget(keys.tableMeta(t), 'json')) ?? '{}') as { version?: number; rows?: number };
          const exported = await redis.hgetall(keys.tableExported(t));
          if (!meta.version || Number(exported.version) !== meta.version || Number(exported.rows) !== meta.rows) return false;
        }
        return true;
      }, 120_000, 500);
      const exportRows = await duckdbCount(path.join(exportDir, 'ledger.parquet'));
      const temps = [...(await listFiles(dataDir)), ...(await listFiles(exportDir))].filter((f) => /\.fd-tmp-|\.tmp-/.test(f));

      console.log(
        `faults: injected ${stats.kills} SIGKILLs (${[...killed].sort().join(', ')}) and ${stats.redisRestarts} Redis restart; ` +
          `${stats.churnOps} file changes, ${stats.writesSent} writes sent (${stats.writesAcked} acknowledged, ${stats.writesRefused} refused while a component or Redis was down), ` +
          `${stats.queries} queries answered (${stats.queryErrors} refused during restarts). ` +
          `Verified: churn snapshot = folder; ledger files vs reference: ${mismatches} mismatches; exports current (ledger export ${exportRows} rows = ${reference.size}); temp files left: ${temps.length}.`,
      );
      expect(stats.kills).toBeGreaterThanOrEqual(8);
      expect(killed).toEqual(new Set(['monitor', 'cacher', 'query-api', 'exporter', 'write-applier']));
      expect(stats.redisRestarts).toBe(1);
      expect(retried?.again).toEqual({ writeId: retried?.first, replayed: 'true' });
      expect(mismatches).toBe(0);
      expect(notApplied).toBe(0);
      expect(exportRows).toBe(reference.size);
      expect(temps).toEqual([]);
      for (const p of procs.values()) expect(p.proc.alive, `${p.role} still running`).toBe(true);
    } finally {
      redis.disconnect();
    }
  }, 300_000);
});

async function duckdbCount(file: string): Promise<number> {
  await stat(file);
  return parquetRowCount(file);
}
