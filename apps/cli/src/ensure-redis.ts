import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** True when something at `url` answers PING like Redis does. */
export async function redisAnswers(url: string, timeoutMs = 1_000): Promise<boolean> {
  let host = '127.0.0.1';
  let port = 6379;
  try {
    const u = new URL(url);
    host = u.hostname || host;
    port = Number(u.port || 6379);
    if (u.protocol === 'rediss:' || u.password) return true; // TLS or auth: let the client connect and report.
  } catch {
    return false;
  }
  return await new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(/^(\+PONG|-NOAUTH)/.test(d.toString())));
  });
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A private redis-server started for this process; stopped with it. */
export interface PrivateRedis {
  readonly url: string;
  stop(): void;
}

/**
 * Starts a private `redis-server` on a free local port (nothing saved to disk) when one is
 * installed; null when there is none on the PATH.
 */
export async function startPrivateRedis(): Promise<PrivateRedis | null> {
  const found = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (found.error || found.status !== 0) return null;
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'flashduck-redis-'));
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction'],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(url, 200)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = () => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  return { url, stop };
}

export const REDIS_HELP = `No Redis answers at that address. FlashDuck needs Redis 6.2 or newer:
  - Debian/Ubuntu: sudo apt-get install redis-server   (flashduck standalone then starts a private one)
  - macOS:         brew install redis
  - Docker:        docker run -p 6379:6379 redis:7
or point FLASHDUCK_REDIS_URL (or --redis-url) at a running Redis.`;
