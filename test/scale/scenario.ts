import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { AppProcess, ROOT, exportsCurrent, flashduckEnv, freePort, post, query, removeDir, rows, rowsOnDisk, tempDir, waitFor, writeAtomic } from '../helpers.js';

/**
 * One fixed workload through every path of FlashDuck — files in, queries out, writes applied to the files,
 * a file change, exports — run as separate processes against a given Redis. Everything it returns depends
 * only on the workload, never on timing, so two runs (one Redis vs. a cluster; one instance of each component
 * vs. many) must return equal results.
 */
export interface ScenarioResult {
  /** Answers of the fixed queries after the first load, after the writes and after the file change. */
  readonly answers: Record<string, unknown>;
  /** The ledger table's rows as its files hold them after the writes. */
  readonly ledgerFiles: Record<string, unknown>[];
  /** Every table's export, read back with DuckDB. */
  readonly exports: Record<string, unknown[]>;
  /** Component instances alive at the end, per component (from `flashduck status --json`). */
  readonly instances: Record<string, number>;
}

export interface ScenarioOptions {
  readonly label: string;
  /** Redis settings for every process (FLASHDUCK_REDIS_URL and possibly FLASHDUCK_REDIS_CLUSTER_NODES). */
  readonly redisEnv: (component: string, index: number) => Record<string, string>;
  readonly prefix: string;
  /** How many instances of each component to run (default one each, two query-apis). */
  readonly counts?: Partial<Record<Component, number>>;
  /** Called with the processes once everything is served (extra checks while the stack runs). */
  readonly during?: (stack: { procs: AppProcess[]; ports: number[]; env: Record<string, string> }) => Promise<void>;
}

export type Component = 'monitor' | 'cacher' | 'query-api' | 'exporter' | 'write-applier';
const TABLES = ['events', 'ledger', 'metrics', 'orders', 'products'] as const;

const QUERIES: Record<string, string> = {
  orders: 'SELECT count(*) AS n, sum(amount) AS total, count(coupon) AS with_coupon, min(id) AS lo, max(id) AS hi FROM orders',
  ordersByCustomer: 'SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer ORDER BY customer',
  ordersSchema: "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position",
  events: 'SELECT kind, count(*) AS n, sum(n) AS s, min(ts) AS first FROM events GROUP BY kind ORDER BY kind',
  products: 'SELECT * FROM products ORDER BY sku',
  metrics: 'SELECT host, count(*) AS n, round(avg(cpu), 6) AS cpu FROM metrics GROUP BY host ORDER BY host',
  ledger: 'SELECT id, v, amount FROM ledger ORDER BY id',
  join: 'SELECT p.category, count(*) AS n FROM orders o JOIN products p ON o.sku = p.sku GROUP BY 1 ORDER BY 1',
};

function csv(header: string, lines: string[]): string {
  return `${header}\n${lines.join('\n')}\n`;
}

async function writeFixtures(dataDir: string): Promise<void> {
  await mkdir(path.join(dataDir, 'orders'), { recursive: true });
  await mkdir(path.join(dataDir, 'ledger'), { recursive: true });
  const order = (i: number, coupon?: string) => `${i},c${i % 17},P${i % 20},${(i * 7) % 1000}.25${coupon === undefined ? '' : `,${coupon}`}`;
  await writeFile(path.join(dataDir, 'orders', 'part-1.csv'), csv('id,customer,sku,amount', Array.from({ length: 300 }, (_, i) => order(i))));
  // Schema evolution: a later file adds a column.
  await writeFile(path.join(dataDir, 'orders', 'part-2.csv'), csv('id,customer,sku,amount,coupon', Array.from({ length: 300 }, (_, i) => order(300 + i, i % 3 ? '' : `SAVE${i % 5}`))));
  await writeFile(
    path.join(dataDir, 'events.ndjson'),
    `${Array.from({ length: 200 }, (_, i) => JSON.stringify({ ts: new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString(), kind: ['view', 'click', 'buy'][i % 3], n: i })).join('\n')}\n`,
  );
  await writeFile(path.join(dataDir, 'products.json'), JSON.stringify(Array.from({ length: 20 }, (_, i) => ({ sku: `P${i}`, category: ['tools', 'toys', 'food', 'books'][i % 4], price: i + 0.5 }))));
  await writeFile(path.join(dataDir, 'ledger', 'base.csv'), csv('id,v,amount', Array.from({ length: 100 }, (_, i) => `${i},base-${i},${i * 10}`)));
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const out = path.join(dataDir, 'metrics.parquet').replace(/'/g, "''");
    await conn.run(`COPY (SELECT 'h' || (i % 7) AS host, (i * 37 % 1000) / 10.0 AS cpu, TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND AS at FROM range(1000) t(i)) TO '${out}' (FORMAT parquet)`);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** Every row of a Parquet file, read with DuckDB, in a stable order. */
export async function readParquet(file: string): Promise<unknown[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const r = await conn.runAndReadAll(`SELECT * FROM read_parquet('${file.replace(/'/g, "''")}') ORDER BY ALL`);
    return JSON.parse(JSON.stringify(r.getRowObjectsJS(), (_k, v) => (typeof v === 'bigint' ? Number(v) : v))) as unknown[];
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

async function answers(port: number): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [name, sql] of Object.entries(QUERIES)) out[name] = await rows(port, sql);
  return out;
}

/** Fails with the log lines of any process that logged an error or a cross-slot refusal. */
export function assertCleanLogs(procs: AppProcess[]): void {
  const bad = procs.flatMap((p) => p.logs.filter((l) => /CROSSSLOT|"level":(50|60)/.test(l)).map((l) => `${p.app}: ${l}`));
  if (bad.length) throw new Error(`errors in component logs:\n${bad.slice(0, 20).join('\n')}`);
}

/** Processes of a test stack, with the query-api ports and the settings they share. */
export interface Stack {
  readonly procs: AppProcess[];
  readonly ports: number[];
  readonly env: Record<string, string>;
  /** Metrics port of each process (cacher, exporter, monitor and write-applier), by instance id. */
  readonly metricsPorts: Map<string, number>;
  readonly instances: { id: string; component: Component; proc: AppProcess }[];
  start(component: Component, index: number): Promise<AppProcess>;
}

export const SCALE_COMPONENTS: readonly Component[] = ['monitor', 'cacher', 'query-api', 'exporter', 'write-applier'];
const METRICS_VAR: Partial<Record<Component, string>> = {
  monitor: 'MONITOR_METRICS_PORT',
  cacher: 'CACHER_METRICS_PORT',
  exporter: 'EXPORTER_METRICS_PORT',
  'write-applier': 'WRITE_APPLIER_METRICS_PORT',
};

/**
 * Starts `counts` instances of each component as processes over `dataDir`, each with its own instance id,
 * scratch folders, query port or metrics port. Fast timings so a test sees changes within a second or two.
 */
export async function startStack(options: {
  label: string;
  prefix: string;
  dataDir: string;
  work: string;
  counts: Record<Component, number>;
  redisEnv: (component: string, index: number) => Record<string, string>;
  extraEnv?: Record<string, string>;
}): Promise<Stack> {
  const { work } = options;
  const ports: number[] = [];
  for (let i = 0; i < options.counts['query-api']; i++) ports.push(await freePort());
  const env: Record<string, string> = {
    ...flashduckEnv(options.prefix, options.dataDir, work),
    FLASHDUCK_HEARTBEAT_MS: '500',
    MONITOR_POLL_MS: '200',
    MONITOR_SETTLE_MS: '100',
    MONITOR_LEASE_MS: '2000',
    CACHER_LEASE_MS: '3000',
    CACHER_RECONCILE_MS: '1000',
    CACHER_READ_PARALLELISM: '1',
    // One DuckDB thread per instance, as a pod with a one-core limit would run: a dozen processes share two cores here.
    CACHER_THREADS: '1',
    QUERY_THREADS: '1',
    EXPORTER_DEBOUNCE_MS: '200',
    EXPORTER_RECONCILE_MS: '1000',
    WRITER_POLL_MS: '100',
    QUERY_API_REFRESH_MS: '500',
    QUERY_TIMEOUT_MS: '30000',
    ...options.extraEnv,
  };
  const stack: Stack = {
    procs: [],
    ports,
    env,
    metricsPorts: new Map(),
    instances: [],
    async start(component, i) {
      const id = `${options.label}-${component}-${i}`;
      const metricsVar = METRICS_VAR[component];
      let metricsPort = stack.metricsPorts.get(id);
      if (metricsVar && metricsPort === undefined) {
        metricsPort = await freePort();
        stack.metricsPorts.set(id, metricsPort);
      }
      const proc = AppProcess.start(component, {
        ...env,
        ...options.redisEnv(component, i),
        FLASHDUCK_INSTANCE_ID: id,
        ...(metricsVar ? { [metricsVar]: String(metricsPort) } : {}),
        ...(component === 'query-api' ? { QUERY_API_PORT: String(ports[i]), QUERY_API_CACHE_DIR: path.join(work, `cache-${i}`) } : {}),
        ...(component === 'cacher' ? { CACHER_WORK_DIR: path.join(work, `cacher-${i}`) } : {}),
        ...(component === 'exporter' ? { EXPORTER_WORK_DIR: path.join(work, `exporter-${i}`) } : {}),
        ...(component === 'write-applier' ? { WRITER_WORK_DIR: path.join(work, `writer-${i}`) } : {}),
      });
      stack.procs.push(proc);
      stack.instances.push({ id, component, proc });
      return proc;
    },
  };
  for (const component of SCALE_COMPONENTS) for (let i = 0; i < options.counts[component]; i++) await stack.start(component, i);
  return stack;
}

/** The value of a counter (summed over the given label values) on a component's /metrics. */
export async function scrapeCounter(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const l = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const dataDir = await tempDir(`${options.label}-data`);
  const work = await tempDir(`${options.label}-work`);
  const counts: Record<Component, number> = { monitor: 1, cacher: 1, 'query-api': 2, exporter: 1, 'write-applier': 1, ...options.counts };
  let stack: Stack | undefined;
  try {
    await writeFixtures(dataDir);
    stack = await startStack({ label: options.label, prefix: options.prefix, dataDir, work, counts, redisEnv: options.redisEnv });
    const { procs, ports, env } = stack;
    const served = async (port: number) => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/tables`);
      const body = (await res.json()) as { tables: { name: string }[] };
      return TABLES.every((t) => body.tables.some((x) => x.name === t));
    };
    for (const port of ports) await waitFor(`all tables served on ${port}`, () => served(port), 90_000, 200);
    const result: { answers: Record<string, unknown> } = { answers: {} };
    result.answers.loaded = await answers(ports[0]!);
    for (const port of ports.slice(1)) {
      const other = await answers(port);
      if (JSON.stringify(other) !== JSON.stringify(result.answers.loaded)) throw new Error(`query-api on ${port} answers differently`);
    }
    if (options.during) await options.during({ procs, ports, env });

    // Writes through every replica in turn: upserts (new keys and updates), then deletes; read-your-writes on another.
    let last = '';
    for (let b = 0; b < 6; b++) {
      const batch = Array.from({ length: 25 }, (_, i) => {
        const id = 50 + b * 25 + i; // ids 50–99 exist (updates), 100–199 are new
        return { id, v: `w${b}-${i}`, amount: id * 100 + b };
      });
      const r = await post(ports[b % ports.length]!, '/v1/tables/ledger/upsert', { key: ['id'], rows: batch });
      if (r.status !== 202) throw new Error(`upsert refused: ${JSON.stringify(r.body)}`);
      last = r.body.writeId;
    }
    // An idempotent write, retried through another replica: answered again with its writeId, queued once; the
    // key with another body is refused.
    const idem = async (port: number, rows: unknown[]) => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/tables/ledger/upsert`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'scenario-1' }, body: JSON.stringify({ key: ['id'], rows }) });
      return { status: res.status, replayed: res.headers.get('idempotent-replayed'), writeId: ((await res.json()) as { writeId?: string }).writeId };
    };
    const first = await idem(ports[0]!, [{ id: 42, v: 'idempotent', amount: 1 }]);
    const retry = await idem(ports[ports.length - 1]!, [{ id: 42, v: 'idempotent', amount: 1 }]);
    const reused = await idem(ports[0]!, [{ id: 42, v: 'other', amount: 2 }]);
    if (first.status !== 202 || retry.writeId !== first.writeId) throw new Error(`an idempotent retry was not answered with the first writeId: ${JSON.stringify({ first, retry })}`);
    result.answers.idempotent = [first.status, first.replayed, retry.status, retry.replayed, reused.status];
    const del = await post(ports[0]!, '/v1/tables/ledger/delete', { key: ['id'], rows: Array.from({ length: 20 }, (_, i) => ({ id: i * 9 })) });
    if (del.status !== 202) throw new Error(`delete refused: ${JSON.stringify(del.body)}`);
    last = del.body.writeId;
    const fresh = await query(ports[ports.length - 1]!, QUERIES.ledger!, { after: last });
    if (fresh.status !== 200) throw new Error(`read-your-writes query failed: ${JSON.stringify(fresh.body)}`);
    result.answers.afterWritesRead = fresh.body.rows;
    result.answers.written = await answers(ports[ports.length - 1]!);

    const newest = async () => ((await (await fetch(`http://127.0.0.1:${ports[0]}/v1/tables/orders/versions`)).json()) as { versions: { version: number }[] }).versions[0]!.version;
    const before = await newest();
    // A file change: one orders file removed, a new one added.
    await writeAtomic(path.join(dataDir, 'orders', 'part-3.csv'), csv('id,customer,sku,amount,coupon', Array.from({ length: 100 }, (_, i) => `${600 + i},c${i % 5},P${i % 20},${i}.5,NEW`)));
    await rm(path.join(dataDir, 'orders', 'part-1.csv'));
    for (const port of ports) {
      await waitFor(`file change served on ${port}`, async () => (await rows(port, 'SELECT count(*) AS n FROM orders'))[0]?.n === 400, 60_000, 150);
    }
    const changed = await answers(ports[0]!);
    result.answers.changed = changed;
    // The change feed between the versions before and after it, paired by id (its parts may live on other nodes).
    const feed = await fetch(`http://127.0.0.1:${ports[ports.length - 1]}/v1/tables/orders/changes?from=${before}&to=${await newest()}&key=id`);
    if (feed.status !== 200) throw new Error(`change feed failed: ${feed.status} ${await feed.text()}`);
    const changes = ((await feed.json()) as { rows: { _change: string }[] }).rows;
    result.answers.changes = { count: changes.length, kinds: [...new Set(changes.map((r) => r._change))].sort(), rows: changes };

    // Exports: every table's export is the version the query-api serves.
    const exportDir = env.FLASHDUCK_EXPORT_DIR!;
    await waitFor('exports of the current versions', () => exportsCurrent(ports[0]!, TABLES.length), 60_000, 200);
    const exports: Record<string, unknown[]> = {};
    for (const t of TABLES) exports[t] = await readParquet(path.join(exportDir, `${t}.parquet`));

    const status = spawnSync(process.execPath, [path.join(ROOT, 'apps/cli/dist/main.js'), 'status', '--json'], {
      env: { ...process.env, ...env, ...options.redisEnv('cli', 0) },
      encoding: 'utf8',
    });
    if (status.status !== 0) throw new Error(`flashduck status failed: ${status.stderr}`);
    const instances: Record<string, number> = {};
    for (const c of (JSON.parse(status.stdout) as { components: { component: string }[] }).components) instances[c.component] = (instances[c.component] ?? 0) + 1;

    assertCleanLogs(procs);
    return { answers: result.answers, ledgerFiles: await rowsOnDisk(path.join(dataDir, 'ledger')), exports, instances };
  } finally {
    await Promise.all((stack?.procs ?? []).map((p) => p.kill('SIGTERM')));
    await removeDir(dataDir);
    await removeDir(work);
  }
}
