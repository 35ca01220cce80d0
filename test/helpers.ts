import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { TEST_REDIS_URL, deletePrefix } from '@flashduck/core/testing';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '@flashduck/core/testing';

/** A temp folder, removed by `cleanup`. */
export async function tempDir(label: string): Promise<string> {
  return await mkdtemp(path.join(os.tmpdir(), `flashduck-${label}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Writes a file the way a careful producer does: temp name in the same folder, then rename. */
export async function writeAtomic(file: string, content: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, file);
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}${processTails()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export { freePort } from '@flashduck/cli';

/** Processes this test file started that are still running (their logs explain a wait that timed out). */
const running = new Set<AppProcess>();

/** The last log lines of every running process (heartbeats left out), for a wait that timed out. */
function processTails(lines = 12): string {
  if (running.size === 0) return '';
  const tails = [...running].map((p) => `--- ${p.app} (pid ${p.child.pid}):\n${p.logs.filter((l) => !/heartbeat/i.test(l)).slice(-lines).join('\n')}`);
  return `\nlast log lines of the running processes:\n${tails.join('\n')}`;
}

/** A component started as its own process: `node apps/<app>/dist/main.js`. */
export class AppProcess {
  readonly logs: string[] = [];
  private exited: Promise<number | null>;

  constructor(
    readonly app: string,
    readonly child: ChildProcess,
  ) {
    const collect = (chunk: Buffer) => this.logs.push(...chunk.toString().split('\n').filter(Boolean));
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    running.add(this);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        running.delete(this);
        resolve(code);
      }),
    );
  }

  static start(app: string, env: Record<string, string>): AppProcess {
    const child = spawn(process.execPath, [path.join(ROOT, 'apps', app, 'dist', 'main.js')], {
      env: { ...process.env, FLASHDUCK_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new AppProcess(app, child);
  }

  /** Waits for a log line matching `re`; on timeout the error carries how the process ended and its last lines. */
  async waitForLog(re: RegExp, timeoutMs = 20_000): Promise<string> {
    try {
      return await waitFor(`${this.app} log ${re}`, () => this.logs.find((l) => re.test(l)), timeoutMs, 50);
    } catch (err) {
      const state = this.alive ? 'still running' : `exited (code ${this.child.exitCode}, signal ${this.child.signalCode})`;
      throw new Error(`${(err as Error).message}; ${this.app} ${state}; its last log lines:\n${this.logs.slice(-15).join('\n')}`);
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.alive) this.child.kill(signal);
    return await this.exited;
  }
}

/** Log lines each component writes once it is up. */
export const STARTED_LOG = /"msg":"(monitor started|cacher started|query-api listening|exporter started|write-applier started)"/;

/** Starts components as separate processes with one environment and waits until each is up. */
export async function startApps(apps: readonly string[], env: Record<string, string>): Promise<AppProcess[]> {
  const procs = apps.map((app) => AppProcess.start(app, env));
  await Promise.all(procs.map((p) => p.waitForLog(STARTED_LOG)));
  return procs;
}

/** Stops processes (SIGTERM), then deletes their Redis prefix and directories. */
export async function stopApps(procs: readonly AppProcess[], prefix: string, ...dirs: string[]): Promise<void> {
  await Promise.all(procs.map((p) => p.kill('SIGTERM')));
  await deletePrefix(TEST_REDIS_URL, prefix);
  for (const dir of dirs) await removeDir(dir);
}

/** Sends SQL to a query-api and returns the parsed JSON body with the status. */
export async function query(port: number, sql: string, extra: Record<string, unknown> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql, ...extra }),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON (csv, ndjson) */
  }
  return { status: res.status, body };
}

/** Rows of a successful query, or throws with the error. */
export async function rows(port: number, sql: string): Promise<Record<string, unknown>[]> {
  const r = await query(port, sql);
  if (r.status !== 200) throw new Error(`query failed (${r.status}): ${JSON.stringify(r.body)}`);
  return r.body.rows as Record<string, unknown>[];
}

/** Every row of a table as its files hold it (read with DuckDB, all columns as text). */
export async function rowsOnDisk(dir: string, orderBy = 'id'): Promise<Record<string, unknown>[]> {
  const files = (await readdir(dir)).filter((f) => !f.startsWith('.') && /\.(csv|parquet|ndjson|json)$/.test(f));
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const parts = files.map((f) => {
      const p = `'${path.join(dir, f).replace(/'/g, "''")}'`;
      if (f.endsWith('.parquet')) return `SELECT * FROM read_parquet(${p})`;
      if (f.endsWith('.csv')) return `SELECT * FROM read_csv(${p}, header=true)`;
      return `SELECT * FROM read_json(${p})`;
    });
    const r = await conn.runAndReadAll(`SELECT * FROM (${parts.join(' UNION ALL BY NAME ')}) ORDER BY ${orderBy}`);
    return r.getRowObjectsJS().map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}


export { stackEnv as flashduckEnv } from '@flashduck/core/testing';

/** Orders Redis stream ids ("<ms>-<seq>"): negative, zero or positive like a sort comparator. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
}

/** POSTs JSON to a component and returns the status with the parsed body. */
export async function post(port: number, p: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** True when a query-api serves `tables` tables and each one's export is the version it serves. */
export async function exportsCurrent(port: number, tables: number): Promise<boolean> {
  const s = (await (await fetch(`http://127.0.0.1:${port}/v1/status`)).json()) as { tables: { name: string; version: number }[]; exports: { table: string; version: number }[] };
  return s.tables.length === tables && s.tables.every((t) => s.exports.some((e) => e.table === t.name && e.version === t.version));
}

/** The rows (k, n) of every CSV file in a folder, read with DuckDB, ordered: what a churn table must serve. */
export async function csvFolderRows(dir: string): Promise<{ k: unknown; n: number }[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.csv'));
  if (!files.length) return [];
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const r = await conn.runAndReadAll(`SELECT k, n FROM read_csv([${files.map((f) => `'${path.join(dir, f)}'`).join(',')}], header=true, union_by_name=true, columns={'k':'VARCHAR','n':'BIGINT'}) ORDER BY k, n`);
    return r.getRowObjectsJS().map((row) => ({ k: row.k, n: Number(row.n) }));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** The rows of a Parquet file, counted by DuckDB. */
export async function parquetRowCount(file: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    return Number((await conn.runAndReadAll(`SELECT count(*) FROM read_parquet('${file}')`)).getRowsJS()[0]![0]);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
