import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { QueryApiConfig } from '../config.js';
import { QUERY_FIELDS, QUERY_PARAMS_GET } from '../query/run-query.js';
import { versionsRead, type TableReferenceParser } from '../query/table-references.js';
import { etagOf, isCacheable, normalizeSql, resultKey, type ResultCache } from '../query/result-cache.js';
import type { Catalog } from '../snapshots/catalog.js';
import { sendResult } from './create-server.js';

/** Query texts whose normalized form the fast path remembers. */
const MAX_TEXTS = 1_000;

/**
 * A request whose JSON body the fast path already read: express's body parser sees it consumed and leaves
 * `body` as it is; a body that was not JSON reaches the app's error handler as `bodyError`.
 */
export interface PreparsedRequest extends IncomingMessage {
  body?: unknown;
  bodyError?: unknown;
}

/**
 * Answers `GET /v1/query?sql=…` and `POST /v1/query` (JSON body) from the result cache before express sees
 * the request: parsing, routing and middleware cost more than the lookup itself. Anything it cannot answer (a
 * miss, `after`, a missing or read-less token) goes on to the full app, which answers and fills the cache.
 */
export function createFastPath(deps: { config: QueryApiConfig; catalog: Catalog; cache: ResultCache; references: TableReferenceParser }) {
  const readers = deps.config.apiTokens.filter((t) => t.scopes.includes('read')).map((t) => createHash('sha256').update(t.token).digest());
  const authorized = (req: IncomingMessage, token: string | null): boolean => {
    if (deps.config.apiTokens.length === 0) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const given = m?.[1] ?? token;
    if (!given) return false;
    const h = createHash('sha256').update(given.trim()).digest();
    let ok = false;
    for (const r of readers) if (timingSafeEqual(r, h)) ok = true;
    return ok;
  };

  // Repeated queries repeat their text byte for byte: its normalized form and cacheability are looked up, not
  // worked out again (the tokenizer costs more than the rest of a hit).
  const texts = new Map<string, string | null>();
  const normalizedIfCacheable = (sql: string): string | null => {
    let n = texts.get(sql);
    if (n === undefined) {
      n = isCacheable(sql) ? normalizeSql(sql) : null;
      if (texts.size >= MAX_TEXTS) texts.delete(texts.keys().next().value!);
      texts.set(sql, n);
    }
    return n;
  };

  /** Sends the cached answer of a query, or says there is none. */
  const answerFromCache = (req: IncomingMessage, res: ServerResponse, sql: string, format: string): boolean => {
    const gen = deps.catalog.generation;
    if (!gen) return false;
    const normalized = normalizedIfCacheable(sql);
    if (normalized === null) return false;
    // A query text not parsed yet goes to the full app, which parses it.
    const refs = deps.references.known(normalized);
    if (!refs) return false;
    const key = resultKey(normalized, format, versionsRead(refs, gen.versions()), (t) => gen.publishedAt(t));
    const hit = deps.cache.get(key);
    if (!hit) {
      const ifNoneMatch = req.headers['if-none-match'];
      if (ifNoneMatch && ifNoneMatch.split(/\s*,\s*/).includes(etagOf(key))) {
        res.writeHead(304, { ETag: etagOf(key), 'Cache-Control': 'no-cache' }).end();
        return true;
      }
      return false;
    }
    sendResult(res, hit, 'hit', req.headers['if-none-match']);
    return true;
  };

  const answerGet = (req: IncomingMessage, res: ServerResponse): boolean => {
    const params = new URLSearchParams(req.url!.slice('/v1/query?'.length));
    const sql = params.get('sql');
    // `after`, or a parameter the API does not know (the full app refuses it), goes to the full app.
    if (!sql || params.has('after') || params.has('versions') || params.has('asOf') || [...params.keys()].some((k) => !QUERY_PARAMS_GET.has(k)) || !authorized(req, params.get('token'))) return false;
    return answerFromCache(req, res, sql, params.get('format') || 'json');
  };

  /** Reads a POST body (its length is known and within the limit), then answers it or hands it on. */
  const answerPost = (req: PreparsedRequest, res: ServerResponse, next: () => void): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('error', () => res.destroy());
    req.once('end', () => {
      try {
        req.body = JSON.parse((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8')) as unknown;
      } catch (err) {
        req.bodyError = Object.assign(err as Error, { type: 'entity.parse.failed' });
        return next();
      }
      const input = req.body as { sql?: unknown; format?: unknown; after?: unknown } | null;
      const format = input?.format ?? 'json';
      if (typeof input?.sql !== 'string' || typeof format !== 'string' || (input.after !== undefined && input.after !== '')) return next();
      // Unknown fields (refused by the full app) and pinned queries (another generation) are not answered here.
      if (Object.keys(input).some((k) => !QUERY_FIELDS.has(k) || k === 'versions' || k === 'asOf')) return next();
      if (!answerFromCache(req, res, input.sql, format || 'json')) next();
    });
  };

  return {
    /**
     * Answers the request if it can (true), or takes it over and calls `next` when the full app must answer
     * (a POST whose body it read first), or leaves it alone (false).
     */
    serve(req: IncomingMessage, res: ServerResponse, next: () => void): boolean {
      const url = req.url;
      if (!url || !deps.catalog.generation) return false;
      if (req.method === 'GET' && url.startsWith('/v1/query?')) return answerGet(req, res);
      if (req.method !== 'POST' || (url !== '/v1/query' && !url.startsWith('/v1/query?'))) return false;
      const length = Number(req.headers['content-length']);
      // Chunked or too large bodies, other content types and requests without a read token: express's way.
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '') || !(length > 0 && length <= deps.config.maxBodyBytes)) return false;
      const encoding = req.headers['content-encoding'];
      if (encoding && encoding !== 'identity') return false; // compressed bodies: express inflates them
      if (!authorized(req, null)) return false;
      answerPost(req, res, next);
      return true;
    },
  };
}
