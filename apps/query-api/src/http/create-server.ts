import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { AppError, HTTP_STATUS, counter, quoteIdent, isRedisUnavailable, readIgnoredFiles, registry, tableOfPath, within, type Keys, type Logger, type RedisClient, type TableMeta } from '@flashduck/core';
import type { QueryApiConfig } from '../config.js';
import { CONTENT_TYPES, ClientGone, QUERY_FIELDS, QUERY_PARAMS_GET, RESULT_FORMATS, cleanDuckDBMessage, runQuery, streamQuery, type ResultFormat } from '../query/run-query.js';
import { WindowedResponse } from './stream-response.js';
import { versionsRead, type TableReferenceParser } from '../query/table-references.js';
import { etagOf, isCacheable, normalizeSql, resultKey, type CachedResult, type ResultCache } from '../query/result-cache.js';
import { CHANGES_ADDED, CHANGES_REMOVED, type Catalog } from '../snapshots/catalog.js';
import { changeColumns, changeKey, changedParts, changesSql } from '../snapshots/changes.js';
import type { Generation } from '../snapshots/generation.js';
import { pickVersion, retainedVersions, versionAt, versionView } from '../snapshots/versions.js';
import { checkIdempotencyKey, enqueueWrite, validateWrite, writeStatus } from '../writes/writes.js';
import { requireScope } from './auth.js';
import { compareWithFiles, consoleStatus } from './console-data.js';
import type { PreparsedRequest } from './fast-path.js';
import { tableDetail, tableSummary } from './tables-view.js';

const writesEnqueued = counter('flashduck_query_writes_enqueued_total', 'Writes queued through the API', ['op']);
const writesReplayed = counter('flashduck_query_writes_replayed_total', 'Writes answered again for a repeated Idempotency-Key (nothing queued)', ['op']);
const httpErrors = counter('flashduck_http_errors_total', 'HTTP error responses by code', ['code']);
const streamsCut = counter('flashduck_query_streams_cut_total', 'Streamed results aborted after their first bytes (byte cap, deadline, client gone)', ['reason']);

interface Pins {
  versions?: Record<string, number>;
  asOf?: number;
}

/** `versions` ({"t": 3}, or "t=3,u=2" in a query string) and `asOf` (an ISO-8601 time) of a query request. */
function parsePins(input: Record<string, unknown>): Pins | null {
  const out: Pins = {};
  let raw = input.versions;
  if (typeof raw === 'string') {
    raw = Object.fromEntries(
      raw.split(',').filter(Boolean).map((pair) => {
        const [t, v] = pair.split('=');
        return [t?.trim() ?? '', Number(v)];
      }),
    );
  }
  if (raw !== undefined && raw !== null && raw !== '') {
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new AppError('bad_request', '"versions" must map table names to versions, e.g. {"orders": 3} (or orders=3 in a query string)');
    for (const [t, v] of Object.entries(raw as Record<string, unknown>)) {
      if (!t || typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new AppError('bad_request', `"versions": ${JSON.stringify(t)} needs a positive integer version`);
    }
    out.versions = raw as Record<string, number>;
  }
  if (input.asOf !== undefined && input.asOf !== '') {
    const at = typeof input.asOf === 'string' && /^\d{4}-\d{2}-\d{2}/.test(input.asOf) ? Date.parse(input.asOf) : Number.NaN;
    if (Number.isNaN(at)) throw new AppError('bad_request', '"asOf" must be an ISO-8601 time, e.g. 2026-12-06T10:00:00Z');
    out.asOf = at;
  }
  return out.versions || out.asOf !== undefined ? out : null;
}

/** What a change-feed request may carry. */
const CHANGES_PARAMS: ReadonlySet<string> = new Set(['from', 'to', 'key', 'format', 'token']);

/** A version number in a query string (undefined when absent). */
function versionParam(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const v = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(v) || v < 1) throw new AppError('bad_request', `"${name}" must be a version number (a positive integer), got ${JSON.stringify(value)}`);
  return v;
}

/** What keys an answer in the result cache: a user's query text, or a generated query's own key. */
type Keying = { normalized: string; cacheable: boolean } | { fixed: string; tables: Record<string, number> };

/** A csv/ndjson/arrow/parquet result up to this size is answered whole (Content-Length, cacheable); a larger one streams. */
const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;

export interface ServerDeps {
  readonly config: QueryApiConfig;
  readonly catalog: Catalog;
  readonly redis: RedisClient;
  /** Fails fast while Redis is away (request paths must not queue commands). */
  readonly requestRedis: RedisClient;
  readonly keys: Keys;
  readonly log: Logger;
  readonly ready: () => { ready: true } | { ready: false; reason: string };
  readonly cache: ResultCache;
  readonly references: TableReferenceParser;
}

/** Sends a cached (or just computed) answer with its headers; 304 when the client already has it. */
export function sendResult(res: ServerResponse, r: CachedResult, cache: 'hit' | 'miss' | 'off', ifNoneMatch: string | undefined): void {
  const headers = {
    ETag: r.etag,
    'Cache-Control': 'no-cache',
    'X-FlashDuck-Cache': cache,
    'X-FlashDuck-Row-Count': String(r.rowCount),
    'X-FlashDuck-Truncated': String(r.truncated),
    'X-FlashDuck-Tables': JSON.stringify(r.tables),
    'X-FlashDuck-Elapsed-Ms': String(r.elapsedMs),
  };
  if (ifNoneMatch && ifNoneMatch.split(/\s*,\s*/).includes(r.etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Type': r.contentType, 'Content-Length': String(r.body.length) }).end(r.body);
}

const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));
const OPENAPI_FILE = fileURLToPath(new URL('../../openapi.json', import.meta.url));
/** The charting library the console uses, served from the package itself (no CDN). */
const CHART_JS = path.join(path.dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');

function parseFormat(value: unknown): ResultFormat {
  if (value === undefined || value === null || value === '') return 'json';
  if (typeof value === 'string' && (RESULT_FORMATS as readonly string[]).includes(value)) return value as ResultFormat;
  throw new AppError('bad_request', `format must be one of ${RESULT_FORMATS.join(', ')}`);
}

/** The query-api HTTP app (not listening: `main` or a test calls `listen`). */
export function createServer(deps: ServerDeps): express.Express {
  const { config, catalog, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const read = requireScope(config.apiTokens, 'read');
  const write = requireScope(config.apiTokens, 'write');

  if (config.corsOrigins.length) {
    app.use((req, res, next) => {
      const origin = req.headers.origin;
      if (origin && (config.corsOrigins.includes('*') || config.corsOrigins.includes(origin))) {
        res.setHeader('Access-Control-Allow-Origin', config.corsOrigins.includes('*') ? '*' : origin);
        res.setHeader('Vary', 'Origin');
        res.setHeader('Access-Control-Allow-Headers', 'authorization, content-type, idempotency-key');
        res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
        res.setHeader('Access-Control-Expose-Headers', 'X-FlashDuck-Row-Count, X-FlashDuck-Truncated, X-FlashDuck-Tables, X-FlashDuck-Elapsed-Ms, X-FlashDuck-Instance, Idempotent-Replayed');
        if (req.method === 'OPTIONS') return void res.status(204).end();
      }
      next();
    });
  }

  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
  app.get('/readyz', (_req, res) => {
    const r = deps.ready();
    res.status(r.ready ? 200 : 503).json(r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });

  // The HTTP API described in OpenAPI 3.1 (the file in the repository, served as it is).
  app.get('/v1/openapi.json', (_req, res) => void res.sendFile(OPENAPI_FILE, { headers: { 'Content-Type': 'application/json; charset=utf-8' } }));

  app.use('/v1', express.json({ limit: config.maxBodyBytes }));
  // A body the fast path read and found not to be JSON: the same answer as express's own parse error.
  app.use('/v1', (req, _res, next) => next((req as PreparsedRequest).bodyError));

  const served = () => {
    const gen = catalog.generation;
    if (!gen) throw new AppError('not_ready', 'snapshots are still loading; retry shortly');
    return gen;
  };

  app.get('/v1/tables', read, (_req, res) => {
    const gen = served();
    const tables = [...gen.tables.values()].map((t) => tableSummary(t.meta)).sort((a, b) => a.name.localeCompare(b.name));
    res.json({ tables });
  });

  app.get('/v1/tables/:table', read, async (req, res) => {
    const name = String(req.params.table);
    const t = served().tables.get(name) ?? served().tables.get(name.toLowerCase());
    if (!t) throw new AppError('not_found', `no table named "${name}"`);
    // Files in its folder FlashDuck does not read; a Redis outage leaves the list out rather than failing.
    const ignored = await within(readIgnoredFiles(deps.requestRedis, deps.keys), 500).catch(() => null);
    res.json({ ...tableDetail(t.meta), ignored: ignored ? ignored.files.filter((f) => tableOfPath(f) === t.meta.table) : [] });
  });

  app.get('/v1/tables/:table/versions', read, async (req, res) => {
    const name = String(req.params.table).toLowerCase();
    const versions = await retainedVersions(deps.requestRedis, deps.keys, name);
    if (versions.length === 0 && !served().tables.has(name)) throw new AppError('not_found', `no table named "${name}"`);
    res.json({ table: name, versions: versions.map(versionView) });
  });

  /**
   * The change feed: the rows that differ between two retained versions (`to`: the newest when left out), from
   * the parts they do not share. Its answer never changes, so it is cached and its ETag holds.
   */
  app.get('/v1/tables/:table/changes', read, async (req, res) => {
    const name = String(req.params.table).toLowerCase();
    const unknown = Object.keys(req.query).find((k) => !CHANGES_PARAMS.has(k));
    if (unknown !== undefined) throw new AppError('bad_request', `unknown parameter "${unknown}": a change feed has ${[...CHANGES_PARAMS].filter((p) => p !== 'token').map((p) => `"${p}"`).join(', ')}`);
    const format = parseFormat(req.query.format);
    const fromVersion = versionParam(req.query.from, 'from');
    if (fromVersion === undefined) throw new AppError('bad_request', '"from" is required: the version to compare from (GET /v1/tables/<t>/versions lists them)');
    const toVersion = versionParam(req.query.to, 'to');
    const versions = await retainedVersions(deps.requestRedis, deps.keys, name);
    if (versions.length === 0 && !served().tables.has(name)) throw new AppError('not_found', `no table named "${name}"`);
    const from = pickVersion(name, versions, fromVersion);
    const to = toVersion === undefined ? versions[0]! : pickVersion(name, versions, toVersion);
    const columns = changeColumns(from, to);
    const key = changeKey(req.query.key, name, columns);
    const parts = changedParts(from.parts, to.parts);
    const sql = changesSql(name, columns, key, quoteIdent(CHANGES_REMOVED), quoteIdent(CHANGES_ADDED), { removed: parts.removed.length > 0, added: parts.added.length > 0 });
    const held = await catalog.changes(from, to, parts, columns);
    try {
      const fixed = `changes\n${format}\n${name}@${from.version}.${from.updatedAt}..${to.version}.${to.updatedAt}\nkey=${key.join(',')}`;
      await answer(req, res, held.generation, sql, format, config.timeoutMs, { fixed, tables: { [name]: to.version } });
    } finally {
      held.release();
    }
  });

  const servedMeta = (table: string) => catalog.generation?.tables.get(table)?.meta;

  /** Waits until the served snapshot contains a write (read-your-writes), bounded by the query deadline. */
  const waitForWrite = async (writeId: string, deadlineAt: number) => {
    for (;;) {
      // A read: while Redis is briefly away (restart, failover) it is asked again until the deadline.
      const s = await writeStatus(deps.requestRedis, deps.keys, writeId, servedMeta).catch((err: unknown) => {
        if (isRedisUnavailable(err) && Date.now() < deadlineAt) return null;
        throw err;
      });
      if (s?.status === 'visible') return;
      if (s?.status === 'failed') throw new AppError('conflict', `write ${writeId} failed: ${s.error ?? 'unknown reason'}`);
      const left = deadlineAt - Date.now();
      if (left <= 0) throw new AppError('timeout', `write ${writeId} is ${s?.status ?? 'unknown (Redis unavailable)'} and not yet visible after ${config.timeoutMs} ms; retry, or query without "after"`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          off();
          resolve();
        }, Math.min(left, 100));
        const off = catalog.onChange(() => {
          clearTimeout(timer);
          off();
          resolve();
        });
      });
    }
  };

  /** The generation a pinned query runs on: its `versions`, or every table as it was at `asOf`. */
  const pinnedGeneration = async (sql: string, normalized: string, pins: Pins) => {
    const refs = deps.references.known(normalized) ?? (await deps.references.parse(sql, normalized));
    const current = served();
    // Every table's retained versions the pins need, read at once.
    const names = new Set([...Object.keys(pins.versions ?? {}), ...(pins.asOf !== undefined ? current.tables.keys() : [])]);
    const history = new Map(await Promise.all([...names].map(async (t) => [t, await retainedVersions(deps.requestRedis, deps.keys, t)] as const)));
    const overrides = new Map<string, TableMeta>();
    for (const [t, v] of Object.entries(pins.versions ?? {})) overrides.set(t, pickVersion(t, history.get(t)!, v));
    let only: Set<string> | undefined;
    if (pins.asOf !== undefined) {
      only = new Set(overrides.keys());
      for (const t of current.tables.keys()) {
        if (overrides.has(t)) continue;
        const read = refs.dynamic || refs.tables.includes(t);
        try {
          overrides.set(t, versionAt(t, history.get(t)!, pins.asOf));
          only.add(t);
        } catch (err) {
          if (read) throw err; // a table the query reads did not exist then; one it does not read is left out
        }
      }
    }
    return await catalog.pinned(overrides, only);
  };

  const query = async (req: Request, res: Response) => {
    const input = req.method === 'GET' ? req.query : ((req.body ?? {}) as Record<string, unknown>);
    const allowed = req.method === 'GET' ? QUERY_PARAMS_GET : QUERY_FIELDS;
    const unknown = Object.keys(input).find((k) => !allowed.has(k));
    if (unknown !== undefined) throw new AppError('bad_request', `unknown ${req.method === 'GET' ? 'parameter' : 'field'} "${unknown}": a query has ${[...QUERY_FIELDS].map((f) => `"${f}"`).join(', ')}`);
    const sql = input.sql;
    if (typeof sql !== 'string' || !sql.trim()) throw new AppError('bad_request', 'the request needs "sql": a non-empty string');
    if (sql.length > 1_000_000) throw new AppError('too_large', 'the SQL text is over 1,000,000 characters');
    const format = parseFormat(input.format);
    const startedAt = Date.now();
    if (input.after !== undefined && input.after !== '') {
      if (typeof input.after !== 'string') throw new AppError('bad_request', '"after" must be a write id');
      await waitForWrite(input.after, startedAt + config.timeoutMs);
    }
    const remaining = Math.max(10, config.timeoutMs - (Date.now() - startedAt));
    // Identical query, format and versions of the tables it may read: the same answer (no DuckDB), and the
    // same ETag everywhere. No await from taking the generation to runQuery's acquire, which pins it: a swap
    // meanwhile would retire and close an unpinned one.
    const normalized = normalizeSql(sql);
    const cacheable = isCacheable(sql);
    const pins = parsePins(input);
    if (!pins) return await answer(req, res, served(), sql, format, remaining, { normalized, cacheable });
    // A pinned query reads older versions: a generation serving them (its tables' versions key the cache as usual).
    const held = await pinnedGeneration(sql, normalized, pins);
    try {
      await answer(req, res, held.generation, sql, format, remaining, { normalized, cacheable });
    } finally {
      held.release();
    }
  };

  /**
   * Answers `sql` on `gen` in `format`: from the result cache when the same answer was given before (or 304 for
   * the client's own copy), else run; JSON whole, file formats streamed once they outgrow the window. A user's
   * query is keyed by its text, format and the versions of the tables it may read; a generated one (a change
   * feed) by a key of its own that already names the versions.
   */
  const answer = async (req: Request, res: Response, gen: Generation, sql: string, format: ResultFormat, remaining: number, keying: Keying) => {
    let tables: Record<string, number> | Promise<Record<string, number>>;
    const keyOf = (t: Record<string, number>) => ('fixed' in keying ? keying.fixed : resultKey(keying.normalized, format, t, (n) => gen.publishedAt(n)));
    const cacheable = 'fixed' in keying || keying.cacheable;
    const refs = 'fixed' in keying ? null : deps.references.known(keying.normalized);
    if ('fixed' in keying || refs) {
      tables = 'fixed' in keying ? keying.tables : versionsRead(refs!, gen.versions());
      const key = keyOf(tables);
      const etag = etagOf(key);
      const ifNoneMatch = req.headers['if-none-match'];
      if (ifNoneMatch && cacheable && ifNoneMatch.split(/\s*,\s*/).includes(etag)) {
        res.writeHead(304, { ETag: etag, 'Cache-Control': 'no-cache', 'X-FlashDuck-Tables': JSON.stringify(tables) }).end();
        return;
      }
      const hit = cacheable ? deps.cache.get(key) : undefined;
      if (hit) return void sendResult(res, hit, 'hit', ifNoneMatch);
    } else {
      // A text this replica never parsed cannot be in its cache: the query runs while DuckDB's parser finds
      // the tables it may read (in its own instance, in parallel).
      const versions = gen.versions();
      tables = deps.references.parse(sql, keying.normalized).then((r) => versionsRead(r, versions));
    }
    if (format === 'json') {
      const result = await runQuery(gen, sql, { ...config, timeoutMs: remaining }, tables);
      const key = keyOf(result.tables);
      const answer: CachedResult = { ...result, etag: etagOf(key) };
      if (cacheable) deps.cache.set(key, answer);
      return void sendResult(res, answer, cacheable ? 'miss' : 'off', undefined);
    }
    // Formats meant for files: the complete result, streamed once it outgrows the window.
    let known: Record<string, number> = {};
    const sink = new WindowedResponse(
      res,
      () => ({ 'Content-Type': CONTENT_TYPES[format], 'Cache-Control': 'no-store', 'X-FlashDuck-Cache': 'off', 'X-FlashDuck-Truncated': 'false', 'X-FlashDuck-Tables': JSON.stringify(known) }),
      STREAM_WINDOW_BYTES,
    );
    void Promise.resolve(tables).then((t) => (known = t));
    let done;
    try {
      done = await streamQuery(gen, sql, format, { timeoutMs: remaining, maxQueued: config.maxQueued, maxStreamBytes: config.maxStreamBytes }, tables, sink);
    } catch (err) {
      if (!sink.started) throw err;
      streamsCut.inc({ reason: err instanceof AppError ? err.code : err instanceof ClientGone ? 'client_gone' : 'error' });
      if (!(err instanceof ClientGone)) deps.log.warn({ err, format }, 'a streamed result was cut after its first bytes; the response is aborted');
      return void sink.abort();
    }
    if (sink.started) return void sink.finish(done.rowCount);
    const key = keyOf(done.tables);
    const answer: CachedResult = { contentType: CONTENT_TYPES[format], body: sink.buffered(), rowCount: done.rowCount, truncated: false, tables: done.tables, elapsedMs: done.elapsedMs, etag: etagOf(key) };
    if (cacheable) deps.cache.set(key, answer);
    sendResult(res, answer, cacheable ? 'miss' : 'off', undefined);
  };
  app.get('/v1/query', read, query);
  app.post('/v1/query', read, query);

  const enqueue = (op: 'upsert' | 'delete') => async (req: Request, res: Response) => {
    const table = String(req.params.table);
    const valid = validateWrite(op, table, req.body, servedMeta(table));
    const durability = { replicas: config.writeReplicas, timeoutMs: config.writeReplicasTimeoutMs };
    const idemKey = checkIdempotencyKey(req.headers['idempotency-key']);
    const idempotency = idemKey ? { key: idemKey, ttlMs: config.idempotencyTtlMs } : undefined;
    const { writeId, replayed } = await enqueueWrite(deps.requestRedis, deps.keys, table, op, valid, durability, idempotency).catch((err: unknown) => {
      if (err instanceof AppError) throw err;
      throw new AppError('not_ready', `the write could not be queued: Redis is unavailable (${(err as Error).message})`);
    });
    if (replayed) {
      writesReplayed.inc({ op });
      res.setHeader('Idempotent-Replayed', 'true');
    } else writesEnqueued.inc({ op });
    res.status(202).json({ writeId });
  };
  app.post('/v1/tables/:table/upsert', write, enqueue('upsert'));
  app.post('/v1/tables/:table/delete', write, enqueue('delete'));
  app.get('/v1/writes/:writeId', read, async (req, res) => {
    res.json(await writeStatus(deps.requestRedis, deps.keys, String(req.params.writeId), servedMeta));
  });

  app.get('/v1/status', read, async (_req, res) => {
    // The request client fails at once while Redis is down instead of queueing: status answers during an outage.
    res.json(await consoleStatus(deps.requestRedis, deps.keys, catalog.generation, config.instanceId));
  });

  app.post('/v1/tables/:table/compare', read, async (req, res) => {
    const name = String(req.params.table);
    const gen = served();
    const t = gen.tables.get(name);
    if (!t) throw new AppError('not_found', `no table named "${name}"`);
    res.json(await compareWithFiles(gen, t.meta, config.dataDir, config));
  });

  app.get('/v1/exports/:file', read, (req, res, next) => {
    const file = String(req.params.file);
    if (!/^[a-z_][a-z0-9_]*\.(parquet|manifest\.json)$/.test(file)) return next(new AppError('not_found', `no export named "${file}"`));
    const type = file.endsWith('.parquet') ? CONTENT_TYPES.parquet : 'application/json; charset=utf-8';
    res.sendFile(path.join(config.exportDir, file), { dotfiles: 'deny', headers: { 'Content-Disposition': `attachment; filename="${file}"`, 'Content-Type': type } }, (err) => {
      if (err && !res.headersSent) next(new AppError('not_found', `no export ${file} (not exported yet, or the export folder is not mounted here)`));
    });
  });

  app.get('/v1/events', read, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write(`retry: 2000\n\n`);
    const off = catalog.onChange((e) => res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`));
    const keepAlive = setInterval(() => res.write(`: keep-alive\n\n`), 15_000);
    req.on('close', () => {
      off();
      clearInterval(keepAlive);
    });
  });

  // The package lives under node_modules/.pnpm: a dot-directory that sendFile refuses unless allowed.
  app.get('/assets/chart.js', (_req, res) => void res.sendFile(CHART_JS, { maxAge: '1d', dotfiles: 'allow' }));
  app.use(express.static(PUBLIC_DIR, { index: 'index.html', maxAge: '5m' }));

  app.use('/v1', (req, _res, next) => next(new AppError('not_found', `no route ${req.method} ${req.path}`)));

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let appErr: AppError;
    const e = err as { type?: string; status?: number; message?: string };
    if (err instanceof AppError) appErr = err;
    else if (e?.type === 'entity.too.large') appErr = new AppError('too_large', `the request body is over ${config.maxBodyBytes} bytes`);
    else if (e?.type === 'entity.parse.failed') appErr = new AppError('bad_request', `the request body is not valid JSON: ${e.message ?? ''}`);
    else if (e?.status === 404) appErr = new AppError('not_found', `no such resource ${req.path}`);
    else if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) appErr = new AppError('bad_request', e.message ?? 'bad request');
    else if (isRedisUnavailable(err)) appErr = new AppError('not_ready', `Redis is unavailable (${e.message ?? ''}); retry shortly`);
    else {
      log.error({ err, path: req.path }, 'request failed');
      appErr = new AppError('internal', `internal error: ${cleanDuckDBMessage(err).slice(0, 300)}`);
    }
    const status = appErr.code === 'timeout' ? 408 : HTTP_STATUS[appErr.code];
    httpErrors.inc({ code: appErr.code });
    if (status === 503) res.setHeader('Retry-After', '1');
    if (res.headersSent) return void res.end();
    res.status(status).json({ error: { code: appErr.code, message: appErr.message } });
  });
  return app;
}
