import http from 'node:http';
import { rm } from 'node:fs/promises';
import {
  HeartbeatPublisher,
  PartStored,
  SnapshotEvent,
  closeRedis,
  createKeys,
  createRedis,
  decode,
  ownDirIn,
  type Component,
  type Logger,
  type Readiness,
} from '@flashduck/core';
import type { QueryApiConfig } from './config.js';
import { createServer } from './http/create-server.js';
import { startPgServer } from './pg/server.js';
import { createFastPath } from './http/fast-path.js';
import { ResultCache } from './query/result-cache.js';
import { TableReferenceParser } from './query/table-references.js';
import { Catalog } from './snapshots/catalog.js';

export interface QueryApiDeps {
  readonly config: QueryApiConfig;
  readonly log: Logger;
}

export interface QueryApi extends Component {
  /** The port the server listens on (useful with QUERY_API_PORT=0). */
  readonly port: number;
  /** The PostgreSQL protocol's port, or null when it is off (or its default port was taken). */
  readonly pgPort: number | null;
  readonly catalog: Catalog;
}

/**
 * Starts a query-api replica: loads every current snapshot, serves HTTP, and swaps in new versions
 * as they are announced (pub/sub hint) or found by the periodic check (a missed hint is caught up).
 */
export async function startQueryApi(deps: QueryApiDeps): Promise<QueryApi> {
  const { config } = deps;
  const log = deps.log.child({ component: 'query-api' });
  const keys = createKeys(config.prefix);
  const redis = createRedis(config, 'worker', log, 'query-api');
  const subscriber = createRedis(config, 'subscriber', log, 'query-api-events');
  const requestRedis = createRedis(config, 'request', log, 'query-api-requests');
  const cacheDir = await ownDirIn(config.cacheDir);
  const catalog = new Catalog({
    redis,
    keys,
    log,
    cacheDir,
    connections: config.concurrency,
    memoryLimitMb: config.memoryLimitMb,
    threads: config.threads,
  });
  const readiness = (): Readiness => {
    if (!catalog.loaded || !catalog.generation) return { ready: false, reason: 'loading snapshots' };
    if (redis.status !== 'ready') return { ready: false, reason: `redis ${redis.status}` };
    return { ready: true };
  };

  const refresh = () =>
    catalog.refresh().catch((err: unknown) => log.warn({ err }, 'snapshot refresh failed; serving the previous versions'));
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.partsStored) {
      const p = decode(PartStored, message);
      if (p.ok) catalog.prefetch(p.value.part);
      return;
    }
    const d = decode(SnapshotEvent, message);
    if (!d.ok) log.warn({ error: d.error }, 'undecodable snapshot event ignored');
    void refresh();
  });
  // Queued until Redis answers (the replica starts, and says it is not ready, while Redis is away).
  void subscriber.subscribe(keys.events, keys.partsStored).catch((err: unknown) => log.warn({ err }, 'subscribing to snapshot events failed; the periodic refresh covers it'));
  // Subscribing again after a reconnect is ioredis' job; the periodic refresh covers the gap.
  const timer = setInterval(() => void refresh(), config.refreshMs);

  const heartbeat = new HeartbeatPublisher(redis, keys, log, {
    component: 'query-api',
    instance: config.instanceId,
    intervalMs: config.heartbeatMs,
    info: () => {
      const gen = catalog.generation;
      return {
        port: server ? (server.address() as { port: number } | null)?.port : undefined,
        pgPort: pg?.port,
        generation: gen?.id,
        tables: gen ? Object.fromEntries(gen.versions()) : {},
        queued: gen?.queued ?? 0,
      };
    },
  });

  const cache = new ResultCache(config.cacheMaxBytes, config.cacheMaxEntryBytes);
  // Entries of a table that changed can never be hit again (their keys name the old version): free them.
  catalog.onChange((e) => cache.evictTables(new Set([e.table])));
  const references = new TableReferenceParser();
  const app = createServer({ config, catalog, redis, requestRedis, keys, log, ready: readiness, cache, references });
  const fastPath = createFastPath({ config, catalog, cache, references });
  // Slow clients may not hold sockets open: headers within QUERY_API_HEADERS_TIMEOUT_MS, the whole request within
  // the query deadline plus a margin. Node checks these every connectionsCheckingInterval (30 s by default).
  const server = http.createServer(
    {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.timeoutMs + 30_000,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(config.headersTimeoutMs / 2))),
    },
    (req, res) => {
      // Which replica answered (behind a Service or load balancer).
      res.setHeader('X-FlashDuck-Instance', config.instanceId);
      const toApp = () => void app(req, res);
      if (!fastPath.serve(req, res, toApp)) toApp();
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const pg =
    config.pgPort === 0
      ? null
      : await startPgServer({
          host: config.host,
          port: config.pgPort,
          maxConnections: config.pgMaxConnections,
          idleMs: config.pgIdleMs,
          tlsCertFile: config.pgTlsCertFile,
          tlsKeyFile: config.pgTlsKeyFile,
          tokens: config.apiTokens,
          limits: { timeoutMs: config.timeoutMs, maxQueued: config.maxQueued, maxStreamBytes: config.maxStreamBytes },
          shared: { cache, references, maxEntryBytes: config.cacheMaxEntryBytes },
          catalog,
          log,
        }).catch((err: unknown) => {
          // The default port taken (a local PostgreSQL on 5433): HTTP still serves. A port asked for must be had.
          if (config.pgPortExplicit) throw err;
          log.warn({ err: (err as Error).message }, 'the PostgreSQL protocol is off: set QUERY_API_PG_PORT to a free port (0 turns it off)');
          return null;
        });
  // The first load happens with the server up: /readyz answers 503 until the snapshots are loaded.
  void refresh();
  const port = (server.address() as { port: number }).port;
  heartbeat.start();
  log.info({ port, host: config.host, tables: catalog.generation?.tables.size ?? 0 }, 'query-api listening');

  let stopping: Promise<void> | undefined;
  return {
    name: 'query-api',
    port,
    pgPort: pg?.port ?? null,
    catalog,
    readiness,
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // Event streams never end by themselves; in-flight queries get a moment to finish.
          setTimeout(() => server.closeAllConnections(), Math.min(config.shutdownMs / 2, 5_000)).unref();
        });
        await pg?.close();
        await catalog.close();
        await references.close();
        await heartbeat.stop();
        await closeRedis(subscriber);
        await closeRedis(requestRedis);
        await closeRedis(redis);
        await rm(cacheDir, { recursive: true, force: true });
        log.info('query-api stopped');
      })();
      return stopping;
    },
  };
}
