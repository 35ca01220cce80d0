import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { redisAnswers } from '@flashduck/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, freePort, query, removeDir, tempDir, waitFor } from './helpers.js';

/** The least-privilege ACL docs/OPERATIONS.md recommends, for prefix `fdacl`. */
const ACL = ['flashduck', 'on', '>s3cret', '~fdacl:*', '&fdacl:*', '+@all', '-@dangerous', '+info', '+config|get', '+client|setname', '+client|getname', '+client|id'];

async function runStack(env: Record<string, string>, dataDir: string): Promise<{ port: number; procs: AppProcess[] }> {
  const port = await freePort();
  const full = { ...env, FLASHDUCK_DATA_DIR: dataDir, QUERY_API_PORT: String(port), QUERY_API_HOST: '127.0.0.1', MONITOR_POLL_MS: '200', MONITOR_SETTLE_MS: '0' };
  const procs = ['monitor', 'cacher', 'query-api', 'write-applier'].map((app) => AppProcess.start(app, full));
  await Promise.all(procs.map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|query-api listening|write-applier started)"/, 30_000)));
  return { port, procs };
}

async function readAndWrite(port: number): Promise<void> {
  await waitFor('table served', async () => (await query(port, 'SELECT count(*) AS n FROM t')).body.rows?.[0]?.n === 1, 20_000);
  const res = await fetch(`http://127.0.0.1:${port}/v1/tables/t/upsert`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: ['id'], rows: [{ id: 2, v: 'b' }] }) });
  const { writeId } = (await res.json()) as { writeId: string };
  const after = await query(port, 'SELECT count(*) AS n FROM t', { after: writeId });
  expect(after.body.rows).toEqual([{ n: 2 }]);
}

describe('Redis security', () => {
  let work: string;
  const servers: ChildProcess[] = [];
  const all: AppProcess[] = [];

  beforeAll(async () => {
    work = await tempDir('redis-sec');
  });
  afterAll(async () => {
    await Promise.all(all.map((p) => p.kill('SIGTERM')));
    for (const s of servers) s.kill('SIGTERM');
    await removeDir(work);
  });

  it('works with an ACL user limited to its key prefix, and that user can touch nothing else', async () => {
    const port = await freePort();
    servers.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--user', 'default', 'off', '--user', ...ACL], { stdio: 'ignore' }));
    await waitFor('acl redis', () => redisAnswers(`redis://127.0.0.1:${port}`, 200), 5_000);
    const dataDir = path.join(work, 'acl-data');
    await mkdir(path.join(dataDir, 't'), { recursive: true });
    await writeFile(path.join(dataDir, 't', 'a.csv'), 'id,v\n1,a\n');
    const url = `redis://flashduck:s3cret@127.0.0.1:${port}`;
    const { port: api, procs } = await runStack({ FLASHDUCK_REDIS_URL: url, FLASHDUCK_PREFIX: 'fdacl', FLASHDUCK_EXPORT_DIR: path.join(work, 'acl-exports') }, dataDir);
    all.push(...procs);
    await readAndWrite(api);
    const client = new Redis(url);
    try {
      await expect(client.set('fd:tables', 'x')).rejects.toThrow(/NOPERM/);
      await expect(client.flushall()).rejects.toThrow(/NOPERM/);
      expect(await client.scard('fdacl:tables')).toBe(1);
    } finally {
      client.disconnect();
    }
    const anonymous = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    anonymous.on('error', () => undefined);
    await expect(anonymous.connect().then(() => anonymous.get('fdacl:tables'))).rejects.toThrow();
    anonymous.disconnect();
  }, 90_000);

  it('works over TLS (rediss://) verified with FLASHDUCK_REDIS_CA_FILE', async () => {
    const certDir = path.join(work, 'tls');
    await mkdir(certDir, { recursive: true });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
    const port = await freePort();
    servers.push(
      spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', path.join(certDir, 'cert.pem'), '--tls-key-file', path.join(certDir, 'key.pem'), '--tls-ca-cert-file', path.join(certDir, 'cert.pem'), '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }),
    );
    const url = `rediss://127.0.0.1:${port}`;
    await waitFor('tls redis', async () => {
      const c = new Redis(url, { tls: { ca: (await import('node:fs')).readFileSync(path.join(certDir, 'cert.pem')) }, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        c.disconnect();
      }
    }, 5_000);
    const dataDir = path.join(work, 'tls-data');
    await mkdir(path.join(dataDir, 't'), { recursive: true });
    await writeFile(path.join(dataDir, 't', 'a.csv'), 'id,v\n1,a\n');
    const { port: api, procs } = await runStack({ FLASHDUCK_REDIS_URL: url, FLASHDUCK_REDIS_CA_FILE: path.join(certDir, 'cert.pem'), FLASHDUCK_PREFIX: 'fdtls', FLASHDUCK_EXPORT_DIR: path.join(work, 'tls-exports') }, dataDir);
    all.push(...procs);
    await readAndWrite(api);
  }, 90_000);
});
