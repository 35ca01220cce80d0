import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, TEST_REDIS_URL, deletePrefix, freePort, removeDir, rows, tempDir, uniquePrefix, waitFor, flashduckEnv } from '../helpers.js';
import { CASES, makeCorpus } from './cases.js';

describe(`bad-file corpus (${CASES.length} cases)`, () => {
  const prefix = uniquePrefix('corpus');
  let dataDir: string;
  let outside: string;
  let work: string;
  let port: number;
  const procs: AppProcess[] = [];
  const table = async (name: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/tables/${name}`);
    return res.status === 200 ? ((await res.json()) as { rows: number; columns: { name: string }[]; errors: { file: string; message: string }[] }) : null;
  };

  beforeAll(async () => {
    dataDir = await tempDir('corpus-data');
    outside = await tempDir('corpus-outside');
    work = await tempDir('corpus-work');
    await makeCorpus(dataDir, outside);
    port = await freePort();
    const env = {
      ...flashduckEnv(prefix, dataDir, work),
      MONITOR_POLL_MS: '200',
      MONITOR_SETTLE_MS: '0',
      CACHER_FAULT_CRASH_ON: 'crash-me',
      CACHER_READ_PARALLELISM: '2',
      QUERY_API_PORT: String(port),
      QUERY_API_REFRESH_MS: '300',
    };
    for (const app of ['monitor', 'cacher', 'query-api']) procs.push(AppProcess.start(app, env));
    await Promise.all(procs.map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|query-api listening)"/)));
    await waitFor('every case table built', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/tables`);
      if (!res.ok) return false;
      const names = new Set(((await res.json()) as { tables: { name: string }[] }).tables.map((t) => t.name));
      return CASES.every((c) => names.has(c.name));
    }, 120_000, 250);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
    await removeDir(outside);
    await removeDir(work);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s has its defined outcome', async (name, c) => {
    const t = await table(name);
    expect(t, name).not.toBeNull();
    if ('read' in c.outcome) {
      const want = c.outcome.read;
      expect(t!.errors, `${name} errors`).toEqual([]);
      expect(t!.rows).toBe(want.rows);
      expect((await rows(port, `SELECT count(*) AS n FROM ${name}`))[0]!.n).toBe(want.rows);
      if (want.columns) expect(t!.columns.map((col) => col.name)).toEqual(want.columns);
      if (want.check) expect(await rows(port, want.check.sql)).toEqual(want.check.rows);
    } else {
      const want = c.outcome.error;
      const err = t!.errors.find((e) => e.file === want.file);
      expect(err, `${name}: ${JSON.stringify(t!.errors)}`).toBeDefined();
      expect(err!.message).toMatch(want.message);
      // The good file's rows keep being served; nothing of the bad file leaks in half-read.
      expect(await rows(port, `SELECT id, name FROM ${name} ORDER BY id`)).toEqual([
        { id: 100, name: 'good' },
        { id: 101, name: 'also good' },
      ]);
    }
  });

  it('kept every process up, and the cacher still builds after a reader crashed', async () => {
    for (const p of procs) expect(p.alive, p.app).toBe(true);
    await writeFile(path.join(dataDir, 'c04_bom', 'more.csv'), 'id,name\n2,b\n');
    await waitFor('another change built', async () => (await rows(port, 'SELECT count(*) AS n FROM c04_bom'))[0]?.n === 2, 20_000);
    expect(procs.find((p) => p.app === 'cacher')!.logs.some((l) => l.includes('a reader process died while reading a file'))).toBe(true);
    // The crashed reader's folder went with it: a folder per running reader is all that is left.
    const cacher = procs.find((p) => p.app === 'cacher')!.child.pid!;
    const readers = (await readFile(`/proc/${cacher}/task/${cacher}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
    // The readers' scratch folders are in the cacher's own folder under CACHER_WORK_DIR.
    const [own] = await readdir(path.join(work, 'cacher'));
    const folders = (await readdir(path.join(work, 'cacher', own!, 'readers'))).filter((n) => n.startsWith('reader-'));
    expect(folders.length).toBe(readers.length);
  });
});
