import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, ROOT, flashduckEnv, freePort, startApps, stopApps, tempDir, uniquePrefix, waitFor } from '../helpers.js';

interface OpenApi {
  paths: Record<string, Record<string, { responses?: Record<string, { $ref?: string; content?: Record<string, { schema: unknown }> }> }>>;
  components: { responses: Record<string, { content: Record<string, { schema: unknown }> }> };
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/**
 * Every route of the HTTP API, called on real processes: each answer's status must be one the description
 * lists for that route, and a JSON body must match the schema it gives.
 */
describe('the OpenAPI description matches the API (separate processes)', () => {
  const prefix = uniquePrefix('openapi');
  let dataDir: string;
  let work: string;
  let port: number;
  let procs: AppProcess[] = [];
  let doc: OpenApi;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  const called = new Set<string>();

  /** Calls a route and checks the answer against the description of `template` (the path as documented). */
  const check = async (method: string, template: string, url: string, init: RequestInit = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}${url}`, { method: method.toUpperCase(), ...init });
    called.add(`${method} ${template}`);
    const op = doc.paths[template]?.[method];
    expect(op, `${method.toUpperCase()} ${template} is described`).toBeDefined();
    let described = op!.responses?.[String(res.status)];
    expect(described, `${method.toUpperCase()} ${url} answered ${res.status}, which the description does not list`).toBeDefined();
    if (described!.$ref) described = doc.components.responses[described!.$ref.split('/').pop()!];
    const type = (res.headers.get('content-type') ?? '').split(';')[0]!;
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status === 304) return { status: res.status, body: null, res };
    expect(Object.keys(described!.content ?? {}), `${method.toUpperCase()} ${url}: content type ${type}`).toContain(type);
    if (type !== 'application/json') return { status: res.status, body, res };
    const json = JSON.parse(body.toString()) as unknown;
    const schema = described!.content![type]!.schema;
    const valid = ajv.validate(resolveRefs(schema) as object, json);
    expect(valid, `${method.toUpperCase()} ${url} (${res.status}) does not match its schema: ${ajv.errorsText(ajv.errors)}\n${JSON.stringify(json).slice(0, 500)}`).toBe(true);
    return { status: res.status, body: json as Record<string, unknown>, res };
  };
  /** The schema with `#/components/...` references pointing into the registered document. */
  const resolveRefs = (schema: unknown): unknown =>
    JSON.parse(JSON.stringify(schema).replace(/"\$ref":"#\/components\//g, '"$ref":"openapi.json#/components/'));

  beforeAll(async () => {
    doc = JSON.parse(await readFile(path.join(ROOT, 'apps/query-api/openapi.json'), 'utf8')) as OpenApi;
    ajv.addSchema(doc, 'openapi.json');
    dataDir = await tempDir('openapi-data');
    work = await tempDir('openapi-work');
    await cp(path.join(ROOT, 'examples/data'), dataDir, { recursive: true });
    port = await freePort();
    const env = { ...flashduckEnv(prefix, dataDir, work), MONITOR_POLL_MS: '100', MONITOR_SETTLE_MS: '50', EXPORTER_DEBOUNCE_MS: '100', QUERY_API_PORT: String(port), QUERY_API_REFRESH_MS: '200', WRITER_POLL_MS: '100' };
    procs = await startApps(['monitor', 'cacher', 'query-api', 'exporter', 'write-applier'], env);
    await waitFor('examples served', async () => ((await (await fetch(`http://127.0.0.1:${port}/v1/tables`)).json()) as { tables: unknown[] }).tables.length === 4, 30_000);
  }, 60_000);
  afterAll(() => stopApps(procs, prefix, dataDir, work));

  it('answers every route as described, successes and errors', async () => {
    const json = { 'content-type': 'application/json' };
    await check('get', '/healthz', '/healthz');
    expect((await check('get', '/readyz', '/readyz')).status).toBe(200);
    await check('get', '/metrics', '/metrics');
    expect((await check('get', '/v1/openapi.json', '/v1/openapi.json')).body).toMatchObject({ openapi: '3.1.0' });
    await check('get', '/v1/tables', '/v1/tables');
    await check('get', '/v1/tables/{table}', '/v1/tables/orders');
    expect((await check('get', '/v1/tables/{table}', '/v1/tables/nosuch')).status).toBe(404);
    const versions = (await check('get', '/v1/tables/{table}/versions', '/v1/tables/customers/versions')).body as { versions: { version: number }[] };

    // Queries: JSON, a file format, a refused statement, a bad field, GET, a pinned version, 304.
    const q = await check('post', '/v1/query', '/v1/query', { headers: json, body: JSON.stringify({ sql: 'SELECT order_id, amount FROM orders ORDER BY 1 LIMIT 3' }) });
    expect(q.status).toBe(200);
    expect((await check('post', '/v1/query', '/v1/query', { headers: json, body: JSON.stringify({ sql: 'SELECT 1 AS x', format: 'csv' }) })).status).toBe(200);
    expect((await check('post', '/v1/query', '/v1/query', { headers: json, body: JSON.stringify({ sql: 'DELETE FROM orders' }) })).status).toBe(400);
    expect((await check('post', '/v1/query', '/v1/query', { headers: json, body: JSON.stringify({ sql: 'SELECT 1', colour: 'red' }) })).status).toBe(400);
    expect((await check('post', '/v1/query', '/v1/query', { headers: json, body: JSON.stringify({ sql: 'SELECT 1', versions: { customers: 9999 } }) })).status).toBe(410);
    const get = await check('get', '/v1/query', `/v1/query?sql=${encodeURIComponent('SELECT count(*) AS n FROM customers')}&versions=customers=${versions.versions[0]!.version}`);
    expect((await check('get', '/v1/query', `/v1/query?sql=${encodeURIComponent('SELECT count(*) AS n FROM customers')}&versions=customers=${versions.versions[0]!.version}`, { headers: { 'if-none-match': get.res.headers.get('etag')! } })).status).toBe(304);

    // Writes: accepted, replayed, refused, then its status; the change feed it makes.
    const write = { key: ['id'], rows: [{ id: 9, name: 'Frances Allen', country: 'US', signup_date: '2024-03-21' }] };
    const accepted = await check('post', '/v1/tables/{table}/upsert', '/v1/tables/customers/upsert', { headers: { ...json, 'idempotency-key': 'openapi-1' }, body: JSON.stringify(write) });
    expect(accepted.status).toBe(202);
    expect((await check('post', '/v1/tables/{table}/upsert', '/v1/tables/customers/upsert', { headers: { ...json, 'idempotency-key': 'openapi-1' }, body: JSON.stringify(write) })).res.headers.get('idempotent-replayed')).toBe('true');
    expect((await check('post', '/v1/tables/{table}/upsert', '/v1/tables/customers/upsert', { headers: { ...json, 'idempotency-key': 'openapi-1' }, body: JSON.stringify({ ...write, rows: [{ id: 10 }] }) })).status).toBe(422);
    expect((await check('post', '/v1/tables/{table}/upsert', '/v1/tables/customers/upsert', { headers: json, body: JSON.stringify({ rows: [] }) })).status).toBe(400);
    const writeId = (accepted.body as { writeId: string }).writeId;
    await waitFor('the write visible', async () => ((await (await fetch(`http://127.0.0.1:${port}/v1/writes/${writeId}`)).json()) as { status: string }).status === 'visible', 30_000);
    expect((await check('get', '/v1/writes/{writeId}', `/v1/writes/${writeId}`)).body).toMatchObject({ status: 'visible' });
    expect((await check('get', '/v1/writes/{writeId}', '/v1/writes/customers.0-1')).status).toBe(404);
    const deleted = await check('post', '/v1/tables/{table}/delete', '/v1/tables/customers/delete', { headers: json, body: JSON.stringify({ key: ['id'], rows: [{ id: 9 }] }) });
    expect(deleted.status).toBe(202);
    const [newest] = ((await check('get', '/v1/tables/{table}/versions', '/v1/tables/customers/versions')).body as { versions: { version: number }[] }).versions;
    const feed = await check('get', '/v1/tables/{table}/changes', `/v1/tables/customers/changes?from=${versions.versions[0]!.version}&to=${newest!.version}&key=id`);
    expect(feed.status).toBe(200);
    expect((await check('get', '/v1/tables/{table}/changes', '/v1/tables/customers/changes')).status).toBe(400);
    expect((await check('get', '/v1/tables/{table}/changes', '/v1/tables/customers/changes?from=9999')).status).toBe(410);

    await check('get', '/v1/status', '/v1/status');
    expect((await check('post', '/v1/tables/{table}/compare', '/v1/tables/orders/compare', { headers: json, body: '{}' })).status).toBe(200);
    await waitFor('orders exported', async () => (await fetch(`http://127.0.0.1:${port}/v1/exports/orders.parquet`)).status === 200, 30_000);
    expect((await check('get', '/v1/exports/{file}', '/v1/exports/orders.parquet')).status).toBe(200);
    expect((await check('get', '/v1/exports/{file}', '/v1/exports/orders.manifest.json')).status).toBe(200);
    expect((await check('get', '/v1/exports/{file}', '/v1/exports/nosuch.parquet')).status).toBe(404);
    // The event stream: its headers, then the client goes away.
    const events = new AbortController();
    const es = await fetch(`http://127.0.0.1:${port}/v1/events`, { signal: events.signal });
    called.add('get /v1/events');
    expect(es.status).toBe(200);
    expect(es.headers.get('content-type')).toBe('text/event-stream');
    events.abort();

    // Every described route was called.
    const described = Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m} ${p}`));
    expect([...called].sort()).toEqual(described.sort());
  });
});
