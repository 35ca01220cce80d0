import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { redisAnswers, startPrivateRedis } from '@flashduck/cli';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, TEST_REDIS_URL, deletePrefix, freePort, removeDir, tempDir, uniquePrefix, waitFor } from './helpers.js';

const CLI = path.join(ROOT, 'apps/cli/dist/main.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });

describe('flashduck CLI', () => {
  it('prints help for itself and for every command', () => {
    const top = run(['--help']);
    expect(top.status).toBe(0);
    for (const cmd of ['standalone', 'monitor', 'cacher', 'query-api', 'exporter', 'write-applier', 'query', 'tables', 'status', 'versions']) {
      expect(top.stdout).toContain(cmd);
      const r = run([cmd, '--help']);
      expect(r.status, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(new RegExp(`^Usage: flashduck ${cmd}`));
    }
  });

  it('rejects an unknown command or flag with exit 2 and a hint', () => {
    const r = run(['frobnicate']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
    const f = run(['tables', '--bogus']);
    expect(f.status).toBe(2);
    expect(f.stderr).toMatch(/flashduck tables --help/);
  });

  it('reports every bad variable of a component at once and exits 1 before connecting', () => {
    const r = run(['cacher'], { CACHER_SNAPSHOT_FORMAT: 'xml', CACHER_CONCURRENCY: 'many', FLASHDUCK_REDIS_URL: 'redis://127.0.0.1:1' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/CACHER_SNAPSHOT_FORMAT: "xml" is not one of duckdb, parquet, arrow, json/);
    expect(r.stderr).toMatch(/CACHER_CONCURRENCY: "many" is not an integer/);
  });

  it('standalone on a busy port says so, names --port, and exits 1 leaving nothing running', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '0.0.0.0', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    const prefix = uniquePrefix('busy');
    const work = await tempDir('busy-work');
    try {
      const r = spawnSync(process.execPath, [CLI, 'standalone', '--port', String(port), '--data-dir', path.join(ROOT, 'examples/data'), '--export-dir', path.join(work, 'exports')], {
        encoding: 'utf8',
        env: { ...process.env, FLASHDUCK_REDIS_URL: TEST_REDIS_URL, FLASHDUCK_PREFIX: prefix, CACHER_WORK_DIR: path.join(work, 'cacher'), QUERY_API_CACHE_DIR: path.join(work, 'cache') },
        timeout: 30_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`flashduck: could not start: port ${port} is already in use`);
      expect(r.stderr).toContain('--port <n>');
      expect(r.stderr).not.toMatch(/ERR_IPC_CHANNEL_CLOSED|Unhandled|Node\.js v/);
    } finally {
      busy.close();
      await deletePrefix(TEST_REDIS_URL, prefix);
      await removeDir(work);
    }
  });

  it('standalone says how to get Redis when the configured one does not answer', () => {
    const r = run(['standalone', '--redis-url', 'redis://127.0.0.1:1', '--data-dir', path.join(ROOT, 'examples/data')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    expect(r.stderr).toMatch(/apt-get install redis-server/);
  });

  it('refuses a Redis that may evict keys when FLASHDUCK_REQUIRE_NOEVICTION=true, and warns loudly otherwise', async () => {
    const port = await freePort();
    const dir = await tempDir('evicting-redis');
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'allkeys-lru', '--dir', dir], { stdio: 'ignore' });
    try {
      const url = `redis://127.0.0.1:${port}`;
      await waitFor('evicting redis up', () => redisAnswers(url, 200), 5_000);
      const env = { FLASHDUCK_REDIS_URL: url, FLASHDUCK_PREFIX: uniquePrefix('evict'), FLASHDUCK_LOG_LEVEL: 'info' };
      const refused = run(['cacher'], { ...env, FLASHDUCK_REQUIRE_NOEVICTION: 'true' });
      expect(refused.status).toBe(1);
      expect(refused.stdout + refused.stderr).toMatch(/maxmemory-policy is .{1,3}allkeys-lru.*refusing to start/);
      const child = spawn(process.execPath, [CLI, 'monitor'], { env: { ...process.env, ...env, FLASHDUCK_DATA_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor('error logged and still running', () => /"level":50.*maxmemory-policy is .{1,3}allkeys-lru/.test(out) && out.includes('monitor started'), 10_000);
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    } finally {
      server.kill('SIGTERM');
      await removeDir(dir);
    }
  });

  it('can start a private redis-server when one is installed', async () => {
    const priv = await startPrivateRedis();
    if (!priv) return expect(spawnSync('redis-server', ['--version']).status).not.toBe(0);
    try {
      expect(await redisAnswers(priv.url)).toBe(true);
    } finally {
      priv.stop();
    }
    await waitFor('private redis stopped', async () => !(await redisAnswers(priv.url, 200)), 5_000);
  });
});

describe('flashduck standalone with query, tables and status', () => {
  const prefix = uniquePrefix('cli');
  let dataDir: string;
  let work: string;
  let port: number;
  let child: ReturnType<typeof spawn>;
  const logs: string[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = await tempDir('cli-data');
    work = await tempDir('cli-work');
    await cp(path.join(ROOT, 'examples/data'), dataDir, { recursive: true });
    port = await freePort();
    env = {
      FLASHDUCK_REDIS_URL: TEST_REDIS_URL,
      FLASHDUCK_PREFIX: prefix,
      FLASHDUCK_API_URL: `http://127.0.0.1:${port}`,
      QUERY_API_CACHE_DIR: path.join(work, 'cache'),
      CACHER_WORK_DIR: path.join(work, 'cacher'),
    };
    child = spawn(process.execPath, [CLI, 'standalone', '--data-dir', dataDir, '--export-dir', path.join(work, 'exports'), '--port', String(port)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => logs.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
    await waitFor('standalone ready', () => logs.join('').includes('FlashDuck is running'), 30_000);
    await waitFor('examples loaded', async () => {
      const r = await fetch(`http://127.0.0.1:${port}/v1/tables`);
      return r.ok && ((await r.json()) as { tables: unknown[] }).tables.length === 4;
    });
  });
  afterAll(async () => {
    child?.kill('SIGTERM');
    await new Promise((r) => child?.once('exit', r));
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
    await removeDir(work);
  });

  it('query prints a table by default and raw formats on request', () => {
    const t = run(['query', 'SELECT sku, name FROM products ORDER BY sku LIMIT 2'], env);
    expect(t.status).toBe(0);
    expect(t.stdout.split('\n')[0]).toMatch(/^sku\s+│ name/);
    expect(t.stdout).toContain('SKU-001');
    expect(t.stderr).toMatch(/2 rows · [\d.]+ ms · products@v\d+/);
    const csv = run(['query', '--format', 'csv', 'SELECT count(*) AS n FROM orders'], env);
    expect(csv.stdout).toBe('n\n12\n');
    const json = JSON.parse(run(['query', '-f', 'json', 'SELECT count(*) AS n FROM customers'], env).stdout);
    expect(json.rows).toEqual([{ n: 7 }]);
  });

  it('query writes every row in csv (past the JSON row cap) and says so, exiting 3, when a table view is cut', () => {
    const csv = run(['query', '--format', 'csv', 'SELECT range AS i FROM range(25000)'], env);
    expect(csv.status).toBe(0);
    expect(csv.stderr).toBe('');
    const lines = csv.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(25_001);
    expect(lines.at(-1)).toBe('24999');
    const table = run(['query', 'SELECT range AS i FROM range(25000)'], env);
    expect(table.status).toBe(3);
    expect(table.stderr).toMatch(/only the first 10000 rows are shown \(QUERY_MAX_ROWS\); use --format csv/);
  });

  it("the README's command form (pnpm -s flashduck …) writes only the result to stdout: a readable Arrow stream, a clean CSV", () => {
    const pnpm = (args: string[]) => spawnSync('pnpm', ['-s', 'flashduck', ...args], { cwd: ROOT, encoding: 'buffer', env: { ...process.env, ...env }, timeout: 60_000 });
    const arrow = pnpm(['query', '--format', 'arrow', 'SELECT order_id, amount FROM orders ORDER BY order_id']);
    expect(arrow.status).toBe(0);
    const table = tableFromIPC(new Uint8Array(arrow.stdout));
    expect(table.numRows).toBe(12);
    expect(table.getChild('order_id')?.get(0)).toBe(1001n);
    const csv = pnpm(['query', '--format', 'csv', 'SELECT count(*) AS n FROM orders']);
    expect(csv.stdout.toString()).toBe('n\n12\n');
  });

  it('upsert sends an Idempotency-Key: the same key and rows again queue nothing and print the first writeId', () => {
    const rows = path.join(dataDir, '..', 'idem-rows.json');
    spawnSync('sh', ['-c', `printf '[{"order_id": 1001, "amount": 1.25}]' > ${rows}`]);
    const first = run(['upsert', 'orders', '--key', 'order_id', '--file', rows, '--idempotency-key', 'cli-test-1'], env);
    expect(first.status).toBe(0);
    expect(first.stderr).toMatch(/^queued upsert of 1 row into orders/);
    const again = run(['upsert', 'orders', '--key', 'order_id', '--file', rows, '--idempotency-key', 'cli-test-1'], env);
    expect(again.status).toBe(0);
    expect(again.stdout).toBe(first.stdout);
    expect(again.stderr).toMatch(/^already queued \(same Idempotency-Key\): upsert of 1 row into orders/);
  });

  it('query shows the API error and exits 1', () => {
    const r = run(['query', 'DROP TABLE orders'], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refused_statement: DROP statements are not allowed/);
  });

  it('tables and status show every table and all five components', () => {
    const tables = run(['tables'], env);
    expect(tables.status).toBe(0);
    for (const t of ['customers', 'events', 'orders', 'products']) expect(tables.stdout).toContain(t);
    const status = JSON.parse(run(['status', '--json'], env).stdout);
    expect(status.components.map((c: { component: string }) => c.component).sort()).toEqual(['cacher', 'exporter', 'monitor', 'query-api', 'write-applier']);
    expect(status.tables.map((t: { table: string }) => t.table)).toEqual(['customers', 'events', 'orders', 'products']);
    const text = run(['status'], env).stdout;
    expect(text).toMatch(/monitor\s+│.*leader/);
  });

  it('tables, status and query find the running standalone by themselves, and tables shows each export', async () => {
    const bare = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^FLASHDUCK_(REDIS_URL|PREFIX|API_URL)$/.test(k))) as Record<string, string>;
    const runBare = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: bare, timeout: 30_000 });
    const q = runBare(['query', '--format', 'csv', 'SELECT count(*) AS n FROM orders']);
    expect(q.stderr).toBe('');
    expect(q.stdout).toBe('n\n12\n');
    expect(JSON.parse(runBare(['status', '--json']).stdout).tables).toHaveLength(4);
    await waitFor('orders exported', async () => / v\d+, .* ago/.test(runBare(['tables']).stdout.split('\n').find((l) => l.startsWith('orders')) ?? ''));
  });

  it('lists files with an extension FlashDuck does not read: in the table, in /v1/status and in flashduck status', async () => {
    await writeFile(path.join(dataDir, 'orders', 'README.md'), '# orders\n');
    await writeFile(path.join(dataDir, 'notes.docx'), 'x');
    // The two files may land in different scans: wait for the one that has seen both.
    await waitFor('both ignored files listed', async () => {
      const status = (await (await fetch(`http://127.0.0.1:${port}/v1/status`)).json()) as { ignored: { files: string[]; total: number } };
      return status.ignored.files.length === 2;
    });
    const status = (await (await fetch(`http://127.0.0.1:${port}/v1/status`)).json()) as { ignored: { files: string[]; total: number } };
    expect(status.ignored.files).toEqual(['notes.docx', 'orders/README.md']);
    const t = (await (await fetch(`http://127.0.0.1:${port}/v1/tables/orders`)).json()) as { ignored: string[] };
    expect(t.ignored).toEqual(['orders/README.md']);
    const text = run(['status'], env).stdout;
    expect(text).toMatch(/Ignored files[^\n]*\n {2}notes\.docx\n {2}orders\/README\.md/);
    await rm(path.join(dataDir, 'orders', 'README.md'));
    await rm(path.join(dataDir, 'notes.docx'));
  });

  it('says there is no FlashDuck deployment when the Redis reached has nothing under the prefix', () => {
    const r = run(['tables'], { ...env, FLASHDUCK_PREFIX: uniquePrefix('nothing') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no FlashDuck deployment here: the Redis at .* holds nothing under the prefix "fdtest-nothing-/);
    expect(run(['status'], { ...env, FLASHDUCK_PREFIX: uniquePrefix('nothing') }).status).toBe(1);
  });
});

/** A digest of every file under `dir` (names and bytes). */
async function treeDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const e of (await readdir(dir, { recursive: true, withFileTypes: true })).sort((a, b) => path.join(a.parentPath, a.name).localeCompare(path.join(b.parentPath, b.name)))) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    hash.update(path.relative(dir, p)).update(await readFile(p));
  }
  return hash.digest('hex');
}

describe('npm start', () => {
  it('serves a copy of the examples (a write never changes examples/data) and stops gracefully on Ctrl+C', async () => {
    const state = await tempDir('start-state');
    const work = await tempDir('start-work');
    const prefix = uniquePrefix('start');
    const port = await freePort();
    const examples = await treeDigest(path.join(ROOT, 'examples/data'));
    // Its own process group, as a terminal runs it: Ctrl+C reaches every process of the group.
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts/start.mjs'), '--port', String(port)], {
      env: { ...process.env, FLASHDUCK_STATE_DIR: state, FLASHDUCK_REDIS_URL: TEST_REDIS_URL, FLASHDUCK_PREFIX: prefix, QUERY_API_CACHE_DIR: path.join(work, 'cache'), CACHER_WORK_DIR: path.join(work, 'cacher') },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const logs: string[] = [];
    child.stdout.on('data', (d: Buffer) => logs.push(d.toString()));
    child.stderr.on('data', (d: Buffer) => logs.push(d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor('npm start running', () => logs.join('').includes('FlashDuck is running'), 120_000);
      expect(logs.join('')).toContain(`data         ${path.join(state, 'data')}`);
      const w = await fetch(`http://127.0.0.1:${port}/v1/tables/orders/upsert`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: ['order_id'], rows: [{ order_id: 1001, amount: 1234.5 }] }),
      });
      expect(w.status).toBe(202);
      await waitFor('write served', async () => {
        const r = await fetch(`http://127.0.0.1:${port}/v1/query?sql=${encodeURIComponent('SELECT amount FROM orders WHERE order_id = 1001')}`);
        return r.ok && ((await r.json()) as { rows: { amount: number }[] }).rows[0]?.amount === 1234.5;
      });
      expect(await treeDigest(path.join(ROOT, 'examples/data'))).toBe(examples);
      expect(await treeDigest(path.join(state, 'data'))).not.toBe(examples);

      process.kill(-child.pid!, 'SIGINT');
      expect(await exited).toBe(0);
      expect(logs.join('')).toContain('shutdown complete');
      expect(logs.join('')).not.toContain('second signal');
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
      await deletePrefix(TEST_REDIS_URL, prefix);
      await removeDir(state);
      await removeDir(work);
    }
  }, 180_000);
});
