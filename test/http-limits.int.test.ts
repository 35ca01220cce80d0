import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query, rows, waitFor } from './helpers.js';
import { startStack, type Stack } from './stack.js';

describe('HTTP limits', () => {
  let stack: Stack;
  let port: number;

  beforeAll(async () => {
    stack = await startStack(
      'http',
      { QUERY_API_HEADERS_TIMEOUT_MS: '1000', QUERY_CONCURRENCY: '1', QUERY_MAX_QUEUED: '1', QUERY_TIMEOUT_MS: '2000', QUERY_API_CORS_ORIGINS: 'https://console.example', QUERY_MAX_RESULT_BYTES: '2048' },
      async (dir) => writeFile(path.join(dir, 't.csv'), 'id\n1\n'),
    );
    port = stack.api.port;
    await waitFor('t served', async () => (await rows(port, 'SELECT count(*) AS n FROM t'))[0]?.n === 1);
  });
  afterAll(async () => stack?.stop());

  it('closes a connection whose headers never finish (slowloris)', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write('GET /v1/tables HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const t0 = Date.now();
    const drip = setInterval(() => !socket.destroyed && socket.write('a'), 200);
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    clearInterval(drip);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('answers 503 instead of queueing without bound when overloaded, and recovers', async () => {
    const slow = 'SELECT count(*) FROM range(1000000) a, range(1000) b';
    const results = await Promise.all(Array.from({ length: 5 }, () => query(port, slow)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toContain(503);
    const busy = results.find((r) => r.status === 503)!;
    expect(busy.body.error.code).toBe('not_ready');
    expect((await query(port, 'SELECT 1 AS one')).status).toBe(200);
  });

  it('refuses a result larger than the byte cap with 413', async () => {
    const r = await query(port, "SELECT repeat('x', 100) AS s FROM range(40)");
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('too_large');
  });

  it('answers CORS only for configured origins', async () => {
    const allowed = await fetch(`http://127.0.0.1:${port}/v1/tables`, { headers: { origin: 'https://console.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://console.example');
    const other = await fetch(`http://127.0.0.1:${port}/v1/tables`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
