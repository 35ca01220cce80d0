import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { QueryApiConfig } from '../config.js';
import { versionsRead, type TableReferenceParser } from '../query/table-references.js';
import { etagOf, isCacheable, normalizeSql, resultKey, type ResultCache } from '../query/result-cache.js';
import type { Catalog } from '../snapshots/catalog.js';
import { sendResult } from './create-server.js';

/**
 * Answers `GET /v1/query?sql=…` from the result cache before express sees the request: parsing,
 * routing and middleware cost more than the lookup itself. Anything it cannot answer (a miss, `after`,
 * a missing or read-less token) goes on to the full app, which answers and fills the cache.
 */
export function createFastPath(deps: { config: QueryApiConfig; catalog: Catalog; cache: ResultCache; references: TableReferenceParser }) {
  const readers = deps.config.apiTokens.filter((t) => t.scopes.includes('read')).map((t) => createHash('sha256').update(t.token).digest());
  const authorized = (req: IncomingMessage, params: URLSearchParams): boolean => {
    if (deps.config.apiTokens.length === 0) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const given = m?.[1] ?? params.get('token');
    if (!given) return false;
    const h = createHash('sha256').update(given.trim()).digest();
    let ok = false;
    for (const r of readers) if (timingSafeEqual(r, h)) ok = true;
    return ok;
  };
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url;
    if (req.method !== 'GET' || !url || !url.startsWith('/v1/query?')) return false;
    const gen = deps.catalog.generation;
    if (!gen) return false;
    const params = new URLSearchParams(url.slice('/v1/query?'.length));
    const sql = params.get('sql');
    if (!sql || params.has('after') || !isCacheable(sql) || !authorized(req, params)) return false;
    const format = params.get('format') || 'json';
    const normalized = normalizeSql(sql);
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
}
