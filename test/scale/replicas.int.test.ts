import { appendFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, deletePrefix, query, removeDir, rows, rowsOnDisk, tempDir, uniquePrefix, waitFor, writeAtomic } from '../helpers.js';
import { SCALE_COMPONENTS, assertCleanLogs, readParquet, scrapeCounter, startStack, type Component, type Stack } from './scenario.js';

const STEPS = Number(process.env.SCALE_STEPS ?? 50);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RunResult {
  churn: unknown[];
  ledger: unknown[];
  ledgerFiles: unknown[];
  exports: Record<string, unknown[]>;
}

/** Version agreement between replicas: for each new version, how long after the first replica the last one served it. */
class VersionSampler {
  /** per replica: "table@version" → first time seen */
  private readonly seen: Map<string, number>[];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly ports: number[]) {
    this.seen = ports.map(() => new Map());
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      await Promise.all(
        this.ports.map(async (port, r) => {
          try {
            const body = (await (await fetch(`http://127.0.0.1:${port}/v1/tables`)).json()) as { tables: { name: string; version: number }[] };
            const now = Date.now();
            for (const t of body.tables) {
              const key = `${t.name}@${t.version}`;
              if (!this.seen[r]!.has(key)) this.seen[r]!.set(key, now);
            }
          } catch {
            /* a replica busy swapping answers next time */
          }
        }),
      );
      await sleep(50);
    }
  }

  async stop(): Promise<{ spreads: number[]; versions: number }> {
    this.running = false;
    await this.loop;
    const perReplica = this.seen;
    // For every table@version any replica served: when each replica first served it or a later version.
    const firstAtLeast = (m: Map<string, number>, table: string, version: number) => {
      let best = Infinity;
      for (const [key, at] of m) {
        const [t, v] = key.split('@');
        if (t === table && Number(v) >= version) best = Math.min(best, at);
      }
      return best;
    };
    const all = new Set(perReplica.flatMap((m) => [...m.keys()]));
    const spreads: number[] = [];
    for (const key of all) {
      const [t, v] = key.split('@') as [string, string];
      const times = perReplica.map((m) => firstAtLeast(m, t, Number(v)));
      if (times.every(Number.isFinite) && Number(v) > 1) spreads.push(Math.max(...times) - Math.min(...times));
    }
    return { spreads: spreads.sort((a, b) => a - b), versions: spreads.length };
  }
}

async function folderRows(dir: string): Promise<unknown[]> {
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

/**
 * The same file churn and writes, step by step, against one instance of each component and against many
 * (2 monitors, 3 cachers, 3 query-apis, 2 exporters, 3 write-appliers on one Redis): the final state is equal,
 * each change is built once, no export is written twice or concurrently, and replicas agree on versions within 1 s.
 */
describe('many replicas of every component: the same results as one instance', () => {
  const prefixes: string[] = [];
  const dirs: string[] = [];
  let reference: RunResult | undefined;

  afterAll(async () => {
    for (const p of prefixes) await deletePrefix(TEST_REDIS_URL, p);
    for (const d of dirs) await removeDir(d);
  });

  async function run(label: string, counts: Record<Component, number>, checks?: (stack: Stack, prefix: string) => { during: () => Promise<void>; after: () => Promise<void> }): Promise<RunResult> {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const work = await tempDir(`scale-${label}`);
    dirs.push(work);
    const dataDir = path.join(work, 'data');
    await mkdir(path.join(dataDir, 'churn'), { recursive: true });
    await mkdir(path.join(dataDir, 'ledger'), { recursive: true });
    await writeFile(path.join(dataDir, 'churn', 'seed.csv'), 'k,n\nseed,0\n');
    await writeFile(path.join(dataDir, 'ledger', 'base.csv'), `id,v\n${Array.from({ length: 200 }, (_, i) => `${i},base-${i}`).join('\n')}\n`);
    const stack = await startStack({ label, prefix, dataDir, work, counts, redisEnv: () => ({ FLASHDUCK_REDIS_URL: TEST_REDIS_URL }) });
    try {
      const { ports } = stack;
      for (const port of ports) {
        await waitFor(`tables served on ${port}`, async () => (await rows(port, 'SELECT (SELECT count(*) FROM churn) AS c, (SELECT count(*) FROM ledger) AS l'))[0]?.l === 200, 90_000, 200);
      }
      const extra = checks?.(stack, prefix);
      const during = extra?.during();

      // The workload: a seeded sequence of file changes and writes, the writes sent in order through every replica.
      let seed = 9;
      const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      let last = '';
      const churnDir = path.join(dataDir, 'churn');
      for (let i = 0; i < STEPS; i++) {
        const files = (await readdir(churnDir)).filter((f) => f.endsWith('.csv')).sort();
        const op = files.length < 3 ? 0 : Math.floor(rand() * 4);
        if (op <= 1) await writeAtomic(path.join(churnDir, `f${i}.csv`), `k,n\nk${i},${i}\n`);
        else if (op === 2) await appendFile(path.join(churnDir, files[Math.floor(rand() * files.length)]!), `k${i}-a,${i}\n`);
        else await rm(path.join(churnDir, files.filter((f) => f !== 'seed.csv')[Math.floor(rand() * (files.length - 1))]!));
        const del = rand() < 0.3;
        const ids = [0, 1, 2].map(() => Math.floor(rand() * 240));
        const res = await fetch(`http://127.0.0.1:${ports[i % ports.length]}/v1/tables/ledger/${del ? 'delete' : 'upsert'}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ key: ['id'], rows: ids.map((id) => (del ? { id } : { id, v: `s${i}-${id}` })) }),
        });
        expect(res.status).toBe(202);
        last = ((await res.json()) as { writeId: string }).writeId;
        await sleep(200);
      }

      const expectedChurn = await folderRows(churnDir);
      const ledger = await waitFor('writes visible', async () => {
        const r = await query(ports[0]!, 'SELECT id, v FROM ledger ORDER BY id', { after: last });
        return r.status === 200 ? (r.body.rows as unknown[]) : undefined;
      }, 60_000);
      for (const port of ports) {
        await waitFor(`churn converged on ${port}`, async () => JSON.stringify(await rows(port, 'SELECT k, n FROM churn ORDER BY k, n')) === JSON.stringify(expectedChurn), 60_000, 200);
        expect(await rows(port, 'SELECT id, v FROM ledger ORDER BY id')).toEqual(ledger);
      }
      await waitFor('exports current', async () => {
        const s = (await (await fetch(`http://127.0.0.1:${ports[0]}/v1/status`)).json()) as { tables: { name: string; version: number }[]; exports: { table: string; version: number }[] };
        return s.tables.length === 2 && s.tables.every((t) => s.exports.some((e) => e.table === t.name && e.version === t.version));
      }, 60_000, 200);
      await during;
      await extra?.after();
      assertCleanLogs(stack.procs);
      const exportDir = stack.env.FLASHDUCK_EXPORT_DIR!;
      return {
        churn: expectedChurn,
        ledger,
        ledgerFiles: await rowsOnDisk(path.join(dataDir, 'ledger')),
        exports: { churn: await readParquet(path.join(exportDir, 'churn.parquet')), ledger: await readParquet(path.join(exportDir, 'ledger.parquet')) },
      };
    } finally {
      await Promise.all(stack.procs.map((p) => p.kill('SIGTERM')));
    }
  }

  it('runs the workload with one instance of each component (the reference)', async () => {
    reference = await run('one', { monitor: 1, cacher: 1, 'query-api': 1, exporter: 1, 'write-applier': 1 });
    expect(reference.churn.length).toBeGreaterThan(5);
    expect(reference.ledger.length).toBeGreaterThan(150);
  }, 240_000);

  it('with 2 monitors, 3 cachers, 3 query-apis, 2 exporters and 3 write-appliers: equal state, each change built once, versions agree within 1 s', async () => {
    expect(reference, 'the reference run failed').toBeDefined();
    let sampler: VersionSampler | undefined;
    const events: { table: string; version: number; sourceGen?: number; builtBy?: string; type: string }[] = [];
    let sub: Redis | undefined;
    let report = '';
    let publishedBefore = 0;
    const result = await run('many', { monitor: 2, cacher: 3, 'query-api': 3, exporter: 2, 'write-applier': 3 }, (stack, prefix) => ({
      during: async () => {
        for (const c of stack.instances.filter((x) => x.component === 'cacher')) {
          publishedBefore += await scrapeCounter(stack.metricsPorts.get(c.id)!, 'flashduck_cacher_rebuilds_total', { outcome: 'published' });
        }
        sub = new Redis(TEST_REDIS_URL);
        await sub.subscribe(`${prefix}:events`);
        sub.on('message', (_ch, msg) => events.push(JSON.parse(msg)));
        sampler = new VersionSampler(stack.ports);
      },
      after: async () => {
        const agreement = await sampler!.stop();
        sub?.disconnect();
        const instances = stack.instances;
        // Each change built once: per table, the manifest generations of published snapshots only ever increase.
        const byTable = new Map<string, number[]>();
        for (const e of events.filter((x) => x.type === 'snapshot')) byTable.set(e.table, [...(byTable.get(e.table) ?? []), e.sourceGen!]);
        for (const [table, gens] of byTable) {
          for (let i = 1; i < gens.length; i++) expect(gens[i], `${table}: generation ${gens[i]} built after ${gens[i - 1]}`).toBeGreaterThan(gens[i - 1]!);
        }
        // The cachers' own count of published builds (metrics) equals the snapshots announced.
        let published = -publishedBefore;
        let skipped = 0;
        const builders = new Set(events.map((e) => e.builtBy));
        for (const c of instances.filter((x) => x.component === 'cacher')) {
          published += await scrapeCounter(stack.metricsPorts.get(c.id)!, 'flashduck_cacher_rebuilds_total', { outcome: 'published' });
          skipped += await scrapeCounter(stack.metricsPorts.get(c.id)!, 'flashduck_cacher_rebuilds_total', { outcome: 'skipped' });
        }
        expect(published).toBe(events.filter((e) => e.type === 'snapshot').length);
        expect(builders.size, 'builds spread over the cachers').toBeGreaterThanOrEqual(2);
        // Exports: never the same version twice, never two at once for a table.
        const exportsWritten = instances
          .filter((x) => x.component === 'exporter')
          .flatMap((x) => x.proc.logs.filter((l) => l.includes('"msg":"export written"')).map((l) => ({ ...(JSON.parse(l) as { table: string; version: number; ms: number; time: number }), by: x.id })));
        const keysWritten = exportsWritten.map((e) => `${e.table}@${e.version}`);
        expect(new Set(keysWritten).size, 'an export version written twice').toBe(keysWritten.length);
        for (const a of exportsWritten) {
          for (const b of exportsWritten) {
            if (a === b || a.table !== b.table) continue;
            const overlap = a.time - a.ms < b.time && b.time - b.ms < a.time;
            expect(overlap, `exports of ${a.table} v${a.version} (${a.by}) and v${b.version} (${b.by}) overlapped`).toBe(false);
          }
        }
        // One leader among the monitors; every instance is in status under its own id.
        const status = (await (await fetch(`http://127.0.0.1:${stack.ports[0]}/v1/status`)).json()) as { components: { component: string; instance: string; info: { role?: string } }[] };
        expect(status.components.filter((c) => c.component === 'monitor' && c.info.role === 'leader')).toHaveLength(1);
        expect(status.components.map((c) => c.instance).sort()).toEqual(instances.map((x) => x.id).sort());
        // Each instance names itself in its metrics, and each replica in its answers.
        for (const x of instances) {
          const port = x.component === 'query-api' ? stack.ports[Number(x.id.split('-').pop())]! : stack.metricsPorts.get(x.id)!;
          const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          expect(metrics).toMatch(new RegExp(`flashduck_instance_info\\{component="${x.component}",instance="${x.id}",host="[^"]+"\\} 1`));
        }
        for (const [i, port] of stack.ports.entries()) {
          expect((await fetch(`http://127.0.0.1:${port}/v1/tables`)).headers.get('x-flashduck-instance')).toBe(`many-query-api-${i}`);
        }
        const max = agreement.spreads[agreement.spreads.length - 1] ?? 0;
        const p50 = agreement.spreads[Math.floor(agreement.spreads.length / 2)] ?? 0;
        report =
          `replicas: ${events.filter((e) => e.type === 'snapshot').length} snapshots published by ${builders.size} cachers (${published} builds counted in metrics, ${skipped} skipped as already built), ` +
          `${exportsWritten.length} exports by ${new Set(exportsWritten.map((e) => e.by)).size} exporters; ${agreement.versions} new versions: last replica served each ${p50} ms (p50) / ${max} ms (max) after the first`;
        expect(agreement.versions).toBeGreaterThan(10);
        expect(max, 'a replica served a version more than 1 s after the first').toBeLessThanOrEqual(1000);
        expect(SCALE_COMPONENTS.every((c) => instances.some((x) => x.component === c))).toBe(true);
      },
    }));
    console.log(report);
    expect(result.churn).toEqual(reference!.churn);
    expect(result.ledger).toEqual(reference!.ledger);
    expect(result.ledgerFiles).toEqual(reference!.ledgerFiles);
    expect(result.exports).toEqual(reference!.exports);
  }, 300_000);
});
