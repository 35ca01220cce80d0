import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers.js';
import { startStack, type Stack } from './stack.js';

describe('API tokens', () => {
  let stack: Stack;
  const url = (p: string) => `http://127.0.0.1:${stack.api.port}${p}`;
  const call = (p: string, token?: string, body?: unknown) =>
    fetch(url(p), {
      method: body === undefined ? 'GET' : 'POST',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  beforeAll(async () => {
    stack = await startStack('auth', { FLASHDUCK_API_TOKENS: 'reader-token-1:read,writer-token-1' }, async (dir) => {
      await writeFile(path.join(dir, 't.csv'), 'id\n1\n');
    });
    await waitFor('t served', async () => (await call('/v1/tables/t', 'reader-token-1')).status === 200);
  });
  afterAll(async () => stack?.stop());

  it('asks for a token (401), refuses a wrong one, and lets a reader query', async () => {
    expect((await call('/v1/tables')).status).toBe(401);
    expect((await call('/v1/tables', 'nope-nope-nope')).status).toBe(401);
    expect((await call('/v1/query', 'reader-token-1', { sql: 'SELECT 1 AS x' })).status).toBe(200);
    expect((await call(`/v1/query?sql=SELECT%201&token=reader-token-1`)).status).toBe(200);
  });

  it('needs the write scope for writes (403 with a read-only token)', async () => {
    expect((await call('/v1/tables/t/upsert', 'reader-token-1', { key: ['id'], rows: [{ id: 2 }] })).status).toBe(403);
    expect((await call('/v1/tables/t/upsert', 'writer-token-1', { key: ['id'], rows: [{ id: 2 }] })).status).toBe(202);
  });

  it('leaves health, readiness, metrics and the console itself open', async () => {
    for (const p of ['/healthz', '/readyz', '/metrics', '/', '/app.js']) expect((await call(p)).status, p).toBe(200);
  });
});
