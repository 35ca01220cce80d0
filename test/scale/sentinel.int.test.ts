import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query, removeDir, rows, tempDir, uniquePrefix, waitFor, writeAtomic } from '../helpers.js';
import { startSentinelSetup, type SentinelSetup } from '../redis-servers.js';
import { startStack, type Stack } from './scenario.js';

/**
 * Redis behind Sentinel (a master, a replica and a Sentinel started here): every component connects with a
 * redis+sentinel:// URL, and keeps working on the promoted replica after a failover.
 */
describe('Redis Sentinel', () => {
  const prefix = uniquePrefix('sentinel');
  let work: string;
  let dataDir: string;
  let sentinel: SentinelSetup;
  let stack: Stack;

  const upsert = async (rowsIn: unknown[]) => {
    const res = await fetch(`http://127.0.0.1:${stack.ports[0]}/v1/tables/t/upsert`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: ['id'], rows: rowsIn }) });
    expect(res.status).toBe(202);
    return ((await res.json()) as { writeId: string }).writeId;
  };

  beforeAll(async () => {
    work = await tempDir('sentinel');
    dataDir = path.join(work, 'data');
    await mkdir(path.join(dataDir, 't'), { recursive: true });
    await writeFile(path.join(dataDir, 't', 'a.csv'), 'id,v\n1,one\n2,two\n');
    sentinel = await startSentinelSetup(path.join(work, 'redis'));
    stack = await startStack({
      label: 'sn',
      prefix,
      dataDir,
      work,
      counts: { monitor: 1, cacher: 1, 'query-api': 1, exporter: 1, 'write-applier': 1 },
      redisEnv: () => ({ FLASHDUCK_REDIS_URL: sentinel.url }),
      // A write is acknowledged only once the replica holds it too: a failover cannot lose it.
      extraEnv: { QUERY_API_WRITE_REPLICAS: '1', QUERY_API_WRITE_REPLICAS_TIMEOUT_MS: '1000' },
    });
    await waitFor('table served', async () => (await rows(stack.ports[0]!, 'SELECT count(*) AS n FROM t'))[0]?.n === 2, 60_000, 200);
  }, 90_000);

  afterAll(async () => {
    await Promise.all((stack?.procs ?? []).map((p) => p.kill('SIGKILL')));
    await sentinel?.stop();
    await removeDir(work);
  });

  it('reads and writes through the master Sentinel names, before and after a failover', async () => {
    const w1 = await upsert([{ id: 3, v: 'three' }]);
    expect((await query(stack.ports[0]!, 'SELECT v FROM t WHERE id = 3', { after: w1 })).body.rows).toEqual([{ v: 'three' }]);
    expect(sentinel.masterPort()).toBe(sentinel.master.port);

    const r = spawnSync('redis-cli', ['-p', String(sentinel.sentinel.port), 'sentinel', 'failover', sentinel.name], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('OK');
    await waitFor('replica promoted', () => sentinel.masterPort() === sentinel.replica.port, 20_000, 100);
    const failedOverAt = Date.now();

    // A file change and a write after the failover both arrive: every component follows the new master.
    await writeAtomic(path.join(dataDir, 't', 'b.csv'), 'id,v\n10,ten\n');
    // Until the old master has become the new master's replica (Sentinel reconfigures it within ~15 s), a write
    // cannot be confirmed by a replica: the API answers 503 (never hangs) and the client sends it again.
    const refusals: string[] = [];
    const w2 = await waitFor('write accepted by the new master', async () => {
      const res = await fetch(`http://127.0.0.1:${stack.ports[0]}/v1/tables/t/upsert`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: ['id'], rows: [{ id: 1, v: 'uno' }] }),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status === 202) return ((await res.json()) as { writeId: string }).writeId;
      expect(res.status).toBe(503);
      refusals.push(((await res.json()) as { error: { message: string } }).error.message);
      return undefined;
    }, 60_000, 200);
    expect(refusals.every((m) => /Redis is unavailable|replicas confirmed it/.test(m)), refusals.join('\n')).toBe(true);
    const acceptedAt = Date.now();
    const after = await query(stack.ports[0]!, 'SELECT id, v FROM t ORDER BY id', { after: w2 });
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    expect(after.body.rows).toEqual([
      { id: 1, v: 'uno' },
      { id: 2, v: 'two' },
      { id: 3, v: 'three' },
      { id: 10, v: 'ten' },
    ]);
    const visibleAt = Date.now();
    await waitFor('export of the new version', async () => {
      const s = (await (await fetch(`http://127.0.0.1:${stack.ports[0]}/v1/status`)).json()) as { tables: { version: number }[]; exports: { version: number }[] };
      return s.exports[0]?.version === s.tables[0]?.version;
    }, 30_000, 200);
    const s = (await (await fetch(`http://127.0.0.1:${stack.ports[0]}/v1/status`)).json()) as { components: { component: string }[] };
    expect(s.components.map((c) => c.component).sort()).toEqual(['cacher', 'exporter', 'monitor', 'query-api', 'write-applier']);
    for (const p of stack.procs) expect(p.alive, `${p.app} still running`).toBe(true);
    console.log(`sentinel: failover to port ${sentinel.replica.port}; write accepted after ${acceptedAt - failedOverAt} ms, visible after ${visibleAt - failedOverAt} ms, exported after ${Date.now() - failedOverAt} ms (${refusals.length} writes answered 503 until a replica could confirm them)`);
  }, 120_000);
});
