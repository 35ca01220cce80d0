import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createKeys, type TableMeta } from '@flashduck/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, startApps, stopApps, ROOT, TEST_REDIS_URL, flashduckEnv, freePort, query, rows, tempDir, uniquePrefix, waitFor } from '../helpers.js';

interface VersionView {
  version: number;
  createdAt: string;
  rows: number;
  files: number;
}

describe('retained versions and pinned queries (separate processes)', () => {
  const prefix = uniquePrefix('versions');
  let dataDir: string;
  let work: string;
  let port: number;
  let procs: AppProcess[] = [];
  const versions = async () => ((await (await fetch(`http://127.0.0.1:${port}/v1/tables/t/versions`)).json()) as { table: string; versions: VersionView[] }).versions;
  const count = async () => (await rows(port, 'SELECT count(*) AS n FROM t'))[0]?.n;
  const addFile = async (name: string, id: number) => {
    await writeFile(path.join(dataDir, 't', name), `id,v\n${id},${name}\n`);
    await waitFor(`${name} served`, async () => (await count()) === id);
  };

  beforeAll(async () => {
    dataDir = await tempDir('versions-data');
    work = await tempDir('versions-work');
    port = await freePort();
    await mkdir(path.join(dataDir, 't'));
    const env = { ...flashduckEnv(prefix, dataDir, work), MONITOR_POLL_MS: '100', MONITOR_SETTLE_MS: '50', QUERY_API_PORT: String(port), QUERY_API_REFRESH_MS: '200', FLASHDUCK_RETAIN_VERSIONS: '3', CACHER_RETAIN_MS: '0' };
    procs = await startApps(['monitor', 'cacher', 'query-api'], env);
  });
  afterAll(() => stopApps(procs, prefix, dataDir, work));

  it('lists the retained versions newest first, and answers a query pinned to a version or a time', async () => {
    await addFile('a.csv', 1);
    const between = new Date();
    await new Promise((r) => setTimeout(r, 50));
    await addFile('b.csv', 2);
    const [v2, v1] = await versions();
    expect(v2).toMatchObject({ rows: 2, files: 2 });
    expect(v1).toMatchObject({ rows: 1, files: 1 });
    expect(v2!.version).toBeGreaterThan(v1!.version);
    expect(Date.parse(v1!.createdAt)).toBeLessThanOrEqual(between.getTime());

    const pinned = await query(port, 'SELECT id FROM t ORDER BY id', { versions: { t: v1!.version } });
    expect(pinned.body.rows).toEqual([{ id: 1 }]);
    expect(pinned.body.tables).toEqual({ t: v1!.version });
    const asOf = await query(port, 'SELECT id FROM t ORDER BY id', { asOf: between.toISOString() });
    expect(asOf.body.rows).toEqual([{ id: 1 }]);
    const get = await (await fetch(`http://127.0.0.1:${port}/v1/query?sql=${encodeURIComponent('SELECT count(*) AS n FROM t')}&versions=t=${v1!.version}`)).json();
    expect(get.rows).toEqual([{ n: 1 }]);
    // Unpinned, the same query reads the current version.
    expect((await query(port, 'SELECT count(*) AS n FROM t')).body.rows).toEqual([{ n: 2 }]);
  });

  it('the CLI lists versions and pins a query with --version and --as-of', async () => {
    const [, v1] = await versions();
    // Run without blocking this process: a blocked event loop would keep this file's idle keep-alive connections
    // past the server's keep-alive timeout unnoticed, and the next request would go out on a closed one.
    const cli = (args: string[]) =>
      new Promise<{ status: number; stdout: string }>((resolve) => {
        execFile(process.execPath, [path.join(ROOT, 'apps/cli/dist/main.js'), ...args], { encoding: 'utf8', env: { ...process.env, FLASHDUCK_API_URL: `http://127.0.0.1:${port}` } }, (err, stdout) =>
          resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout }),
        );
      });
    const list = await cli(['versions', 't']);
    expect(list.status).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^version\s+│ created/);
    expect(list.stdout).toContain(`${v1!.version} `);
    expect((await cli(['query', '--format', 'csv', '--version', `t=${v1!.version}`, 'SELECT id FROM t'])).stdout).toBe('id\n1\n');
    expect((await cli(['query', '--format', 'csv', '--as-of', v1!.createdAt, 'SELECT count(*) AS n FROM t'])).stdout).toBe('n\n1\n');
    const bad = await cli(['query', '--version', 't=x', 'SELECT 1']);
    expect(bad.status).toBe(2);
  });

  it('refuses a time before the first version and a version not retained (410), naming the oldest retained one', async () => {
    const early = await query(port, 'SELECT * FROM t', { asOf: '2000-01-01T00:00:00Z' });
    expect(early.status).toBe(410);
    expect(early.body.error.code).toBe('gone');
    expect(early.body.error.message).toMatch(/table "t" has no retained version at 2000-01-01T00:00:00.000Z; the oldest retained is v\d+ of /);
    const never = await query(port, 'SELECT * FROM t', { versions: { t: 9999 } });
    expect(never.status).toBe(410);
    expect(never.body.error.message).toMatch(/version 9999 of table "t" is not retained/);
    expect((await query(port, 'SELECT 1', { asOf: 'yesterday' })).status).toBe(400);
  });

  it('keeps answering a pinned query the same while new versions arrive, until its version is pruned', async () => {
    const [v2] = await versions();
    const pinnedCount = async () => (await query(port, 'SELECT count(*) AS n FROM t', { versions: { t: v2!.version } })).body.rows?.[0]?.n;
    let stop = false;
    const answers: unknown[] = [];
    const reader = (async () => {
      while (!stop) answers.push(await pinnedCount());
    })();
    await addFile('c.csv', 3);
    await addFile('d.csv', 4);
    stop = true;
    await reader;
    expect(answers.length).toBeGreaterThan(0);
    expect(new Set(answers)).toEqual(new Set([2]));
    // FLASHDUCK_RETAIN_VERSIONS=3: the first version is gone, the second (still pinned above) the oldest.
    const now = await versions();
    expect(now.map((v) => v.rows)).toEqual([4, 3, 2]);
    const gone = await query(port, 'SELECT * FROM t', { versions: { t: now[2]!.version - 1 } });
    expect(gone.status).toBe(410);
    expect(gone.body.error.message).toMatch(new RegExp(`the oldest retained is v${now[2]!.version} `));
  });

  it('finishes a running pinned query whose version is pruned and whose parts are collected meanwhile', async () => {
    const redis = new Redis(TEST_REDIS_URL);
    const keys = createKeys(prefix);
    try {
      const [pinned] = await versions();
      const meta = JSON.parse((await redis.hget(keys.tableVersions('t'), String(pinned!.version)))!) as TableMeta;
      const metric = async () => Number(/flashduck_query_requests_total\{format="csv",outcome="ok"\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1] ?? 0);
      const finishedBefore = await metric();
      // A streamed answer of ~40 MB the client stops reading after its first bytes: the query stays running.
      const res = await fetch(`http://127.0.0.1:${port}/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sql: 'SELECT t.id, t.v, r.range AS n FROM t, range(1000000) r', format: 'csv', versions: { t: pinned!.version } }),
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = decoder.decode((await reader.read()).value, { stream: true });

      // b.csv rewritten, then two more files: with 3 versions retained the pinned one is pruned, and the old
      // b.csv part (listed by no retained version) is collected from Redis.
      await writeFile(path.join(dataDir, 't', 'b.csv'), 'id,v\n2,changed\n');
      await waitFor('b.csv rewritten', async () => (await rows(port, `SELECT count(*) AS n FROM t WHERE v = 'changed'`))[0]?.n === 1);
      const current = JSON.parse((await redis.hget(keys.tableMeta('t'), 'json')) ?? 'null') as TableMeta | null;
      const oldB = meta.parts.filter((p) => !current?.parts.some((q) => q.id === p.id));
      expect(oldB).toHaveLength(1);
      await addFile('e.csv', 5);
      await addFile('f.csv', 6);
      await waitFor('the pinned version pruned', async () => !(await versions()).some((v) => v.version === pinned!.version));
      await waitFor('its old b.csv part collected', async () => {
        const left = await Promise.all(oldB.map((p) => redis.exists(keys.partChunk(p.id, 0))));
        return left.every((n) => n === 0) && oldB.length > 0;
      });
      expect(await metric()).toBe(finishedBefore); // still running

      // Read the rest: every row of the pinned version, b.csv as it was.
      const counts = new Map<string, number>();
      let lines = 0;
      const take = (chunk: string) => {
        const parts = chunk.split('\n');
        text = parts.pop()!;
        for (const line of parts) {
          lines += 1;
          const v = line.split(',')[1]!;
          counts.set(v, (counts.get(v) ?? 0) + 1);
        }
      };
      take(text);
      for (let r = await reader.read(); !r.done; r = await reader.read()) take(text + decoder.decode(r.value, { stream: true }));
      expect(res.headers.get('x-flashduck-tables')).toBe(JSON.stringify({ t: pinned!.version }));
      expect(lines).toBe(1 + 4 * 1_000_000);
      expect(counts.get('b.csv')).toBe(1_000_000);
      expect(counts.get('changed')).toBeUndefined();
      expect(await metric()).toBe(finishedBefore + 1);
    } finally {
      redis.disconnect();
    }
  });
});
