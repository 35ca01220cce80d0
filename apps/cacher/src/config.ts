import os from 'node:os';
import path from 'node:path';
import { EnvReader, SNAPSHOT_FORMATS, readCommonConfig, type CommonConfig, type SnapshotFormat } from '@flashduck/core';

export interface CacherConfig extends CommonConfig {
  readonly snapshotFormat: SnapshotFormat;
  readonly chunkBytes: number;
  readonly concurrency: number;
  readonly readParallelism: number;
  readonly isolateReads: boolean;
  readonly readTimeoutMs: number;
  /** How long a reader process may take to start before it is replaced (its file is not blamed). */
  readonly readerStartMs: number;
  readonly retainMs: number;
  /** Versions kept queryable per table: the last `versions`, and every one younger than `ms`. */
  readonly retention: { versions: number; ms: number };
  readonly leaseMs: number;
  readonly reconcileMs: number;
  readonly memoryLimitMb: number | undefined;
  readonly threads: number | undefined;
  readonly workDir: string;
  readonly metricsPort: number | undefined;
  /** Merge small parts in the background. */
  readonly merge: boolean;
  readonly mergeMaxParts: number;
  readonly mergeMaxBytes: number;
}

/** Reads the cacher's settings; throws a ConfigError naming every bad variable. */
export function loadCacherConfig(env: NodeJS.ProcessEnv): CacherConfig {
  const r = new EnvReader(env);
  return r.finish({
    ...readCommonConfig(r),
    snapshotFormat: r.oneOf('CACHER_SNAPSHOT_FORMAT', SNAPSHOT_FORMATS, 'duckdb'),
    chunkBytes: r.int('CACHER_CHUNK_BYTES', 4 * 1024 * 1024, { min: 1024, max: 512 * 1024 * 1024 - 1 }),
    concurrency: r.int('CACHER_CONCURRENCY', 1, { min: 1, max: 64 }),
    readParallelism: r.int('CACHER_READ_PARALLELISM', 4, { min: 1, max: 64 }),
    isolateReads: r.bool('CACHER_ISOLATE_READS', true),
    readTimeoutMs: r.int('CACHER_READ_TIMEOUT_MS', 600_000, { min: 1_000 }),
    readerStartMs: r.int('CACHER_READER_START_MS', 30_000, { min: 1_000 }),
    retainMs: r.int('CACHER_RETAIN_MS', 60_000, { min: 0 }),
    retention: { versions: r.int('FLASHDUCK_RETAIN_VERSIONS', 20, { min: 1, max: 10_000 }), ms: r.int('FLASHDUCK_RETAIN_MS', 0, { min: 0 }) },
    leaseMs: r.int('CACHER_LEASE_MS', 10_000, { min: 1_000 }),
    reconcileMs: r.int('CACHER_RECONCILE_MS', 5_000, { min: 100 }),
    memoryLimitMb: r.optionalInt('CACHER_MEMORY_LIMIT_MB', { min: 64 }),
    threads: r.optionalInt('CACHER_THREADS', { min: 1 }),
    workDir: path.resolve(r.string('CACHER_WORK_DIR', path.join(os.tmpdir(), 'flashduck-cacher'))),
    metricsPort: r.optionalInt('CACHER_METRICS_PORT', { min: 0, max: 65_535 }),
    merge: r.bool('CACHER_MERGE', true),
    mergeMaxParts: r.int('CACHER_MERGE_MAX_PARTS', 16, { min: 1, max: 10_000 }),
    mergeMaxBytes: r.int('CACHER_MERGE_MAX_BYTES', 256 * 1024 * 1024, { min: 1024 }),
  });
}
