import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, ROOT, TEST_REDIS_URL, deletePrefix, flashduckEnv, freePort, query, removeDir, rows, tempDir, uniquePrefix, waitFor } from '../helpers.js';

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
  const procs: AppProcess[] = [];
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
    for (const app of ['monitor', 'cacher', 'query-api']) procs.push(AppProcess.start(app, env));
    await Promise.all(procs.map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|query-api listening)"/)));
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
    await removeDir(work);
  });

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
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'apps/cli/dist/main.js'), ...args], { encoding: 'utf8', env: { ...process.env, FLASHDUCK_API_URL: `http://127.0.0.1:${port}` } });
    const list = cli(['versions', 't']);
    expect(list.status).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^version\s+│ created/);
    expect(list.stdout).toContain(`${v1!.version} `);
    expect(cli(['query', '--format', 'csv', '--version', `t=${v1!.version}`, 'SELECT id FROM t']).stdout).toBe('id\n1\n');
    expect(cli(['query', '--format', 'csv', '--as-of', v1!.createdAt, 'SELECT count(*) AS n FROM t']).stdout).toBe('n\n1\n');
    const bad = cli(['query', '--version', 't=x', 'SELECT 1']);
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
});
