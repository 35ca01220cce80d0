import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EnvReader, readCommonConfig, type CommonConfig } from '@flashduck/core';

export interface QueryApiConfig extends CommonConfig {
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly maxRows: number;
  readonly maxResultBytes: number;
  /** Bytes a streamed result (csv, ndjson, arrow, parquet) may have. */
  readonly maxStreamBytes: number;
  /** How long an Idempotency-Key of a write is remembered. */
  readonly idempotencyTtlMs: number;
  readonly maxBodyBytes: number;
  /** Replicas that must hold a write (Redis WAIT) before it is acknowledged; 0 = the master alone. */
  readonly writeReplicas: number;
  readonly writeReplicasTimeoutMs: number;
  /** Queries running at once (DuckDB connections per snapshot generation). */
  readonly concurrency: number;
  /** Queries allowed to wait for a connection before new ones get 503. */
  readonly maxQueued: number;
  readonly refreshMs: number;
  /** Bytes of answers this replica keeps for repeated queries (0: no result cache). */
  readonly cacheMaxBytes: number;
  readonly cacheMaxEntryBytes: number;
  readonly cacheDir: string;
  readonly memoryLimitMb: number;
  /** A client must send its request headers within this time (slow clients cannot hold sockets). */
  readonly headersTimeoutMs: number;
  readonly threads: number | undefined;
  /** Bearer tokens; empty means no authentication. `token` (read+write) or `token:read`. */
  readonly apiTokens: readonly { token: string; scopes: readonly ('read' | 'write')[] }[];
  readonly corsOrigins: readonly string[];
  /** The PostgreSQL protocol's port (0: off). */
  readonly pgPort: number;
  /** QUERY_API_PG_PORT was set: failing to listen on it stops query-api (the default port taken only warns). */
  readonly pgPortExplicit: boolean;
  readonly pgMaxConnections: number;
  readonly pgIdleMs: number;
  /** PEM certificate and key: with both, PostgreSQL clients connect over TLS (and must). */
  readonly pgTlsCertFile: string | undefined;
  readonly pgTlsKeyFile: string | undefined;
}

function defaultCacheDir(): string {
  // Snapshot files are read through the page cache on every query: RAM-backed /dev/shm when there is one.
  return existsSync('/dev/shm') ? '/dev/shm/flashduck' : path.join(os.tmpdir(), 'flashduck-query');
}

function parseTokens(r: EnvReader): { token: string; scopes: ('read' | 'write')[] }[] {
  const raw = r.optionalString('FLASHDUCK_API_TOKENS');
  if (!raw) return [];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry): { token: string; scopes: ('read' | 'write')[] } => {
      const idx = entry.lastIndexOf(':');
      const scope = idx > 0 ? entry.slice(idx + 1) : '';
      if (scope === 'read' || scope === 'write' || scope === 'rw') {
        return { token: entry.slice(0, idx), scopes: scope === 'read' ? ['read'] : scope === 'write' ? ['write'] : ['read', 'write'] };
      }
      return { token: entry, scopes: ['read', 'write'] };
    })
    .filter((t) => {
      if (t.token.length < 8) r.problem('FLASHDUCK_API_TOKENS', 'every token must be at least 8 characters');
      return true;
    });
}

/** Reads query-api's settings; throws a ConfigError naming every bad variable. */
export function loadQueryApiConfig(env: NodeJS.ProcessEnv): QueryApiConfig {
  const r = new EnvReader(env);
  return r.finish({
    ...readCommonConfig(r),
    host: r.string('QUERY_API_HOST', '0.0.0.0'),
    port: r.int('QUERY_API_PORT', 8080, { min: 0, max: 65_535 }),
    timeoutMs: r.int('QUERY_TIMEOUT_MS', 30_000, { min: 10 }),
    maxRows: r.int('QUERY_MAX_ROWS', 10_000, { min: 1 }),
    maxResultBytes: r.int('QUERY_MAX_RESULT_BYTES', 64 * 1024 * 1024, { min: 1024 }),
    maxStreamBytes: r.int('QUERY_MAX_STREAM_BYTES', 4 * 1024 * 1024 * 1024, { min: 1024 }),
    idempotencyTtlMs: r.int('WRITER_IDEMPOTENCY_TTL_MS', 24 * 60 * 60 * 1000, { min: 1_000 }),
    maxBodyBytes: r.int('QUERY_MAX_BODY_BYTES', 8 * 1024 * 1024, { min: 1024 }),
    writeReplicas: r.int('QUERY_API_WRITE_REPLICAS', 0, { min: 0, max: 16 }),
    writeReplicasTimeoutMs: r.int('QUERY_API_WRITE_REPLICAS_TIMEOUT_MS', 2_000, { min: 10 }),
    concurrency: r.int('QUERY_CONCURRENCY', 8, { min: 1, max: 256 }),
    maxQueued: r.int('QUERY_MAX_QUEUED', 256, { min: 0 }),
    refreshMs: r.int('QUERY_API_REFRESH_MS', 2_000, { min: 50 }),
    cacheMaxBytes: r.int('QUERY_CACHE_MAX_BYTES', 256 * 1024 * 1024, { min: 0 }),
    cacheMaxEntryBytes: r.int('QUERY_CACHE_MAX_ENTRY_BYTES', 8 * 1024 * 1024, { min: 1024 }),
    cacheDir: path.resolve(r.string('QUERY_API_CACHE_DIR', defaultCacheDir())),
    // One DuckDB per served generation (two during a swap): a bounded default keeps a memory-hungry query
    // from taking the whole machine; it fails with an out-of-memory error instead.
    memoryLimitMb: r.int('QUERY_MEMORY_LIMIT_MB', Math.max(256, Math.min(4096, Math.floor(os.totalmem() / 1024 / 1024 / 4))), { min: 64 }),
    headersTimeoutMs: r.int('QUERY_API_HEADERS_TIMEOUT_MS', 10_000, { min: 100 }),
    threads: r.optionalInt('QUERY_THREADS', { min: 1 }),
    apiTokens: parseTokens(r),
    corsOrigins: (r.optionalString('QUERY_API_CORS_ORIGINS') ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    pgPort: r.int('QUERY_API_PG_PORT', 5433, { min: 0, max: 65_535 }),
    pgPortExplicit: env.QUERY_API_PG_PORT !== undefined && env.QUERY_API_PG_PORT !== '',
    pgMaxConnections: r.int('QUERY_API_PG_MAX_CONNECTIONS', 64, { min: 1, max: 10_000 }),
    pgIdleMs: r.int('QUERY_API_PG_IDLE_MS', 10 * 60_000, { min: 100 }),
    pgTlsCertFile: r.optionalString('QUERY_API_PG_TLS_CERT_FILE'),
    pgTlsKeyFile: r.optionalString('QUERY_API_PG_TLS_KEY_FILE'),
  });
}
