import os from 'node:os';
import path from 'node:path';
import { EnvReader, isInside, readCommonConfig, type CommonConfig } from '@flashduck/core';

export const COMPRESSIONS = ['zstd', 'snappy', 'gzip', 'uncompressed'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface ExporterConfig extends CommonConfig {
  readonly debounceMs: number;
  readonly compression: Compression;
  readonly rowGroupSize: number;
  readonly keepDropped: boolean;
  readonly leaseMs: number;
  readonly reconcileMs: number;
  readonly workDir: string;
  readonly memoryLimitMb: number;
  readonly metricsPort: number | undefined;
}

/** Reads the exporter's settings; throws a ConfigError naming every bad variable. */
export function loadExporterConfig(env: NodeJS.ProcessEnv): ExporterConfig {
  const r = new EnvReader(env);
  const common = readCommonConfig(r);
  if (isInside(common.dataDir, common.exportDir)) {
    r.problem('FLASHDUCK_EXPORT_DIR', `${common.exportDir} is inside the data dir ${common.dataDir}: an export would become a table; choose a directory outside it`);
  }
  return r.finish({
    ...common,
    debounceMs: r.int('EXPORTER_DEBOUNCE_MS', 2_000, { min: 0 }),
    compression: r.oneOf('EXPORTER_COMPRESSION', COMPRESSIONS, 'zstd'),
    rowGroupSize: r.int('EXPORTER_ROW_GROUP_SIZE', 122_880, { min: 1_024 }),
    keepDropped: r.bool('EXPORTER_KEEP_DROPPED', false),
    leaseMs: r.int('EXPORTER_LEASE_MS', 30_000, { min: 1_000 }),
    reconcileMs: r.int('EXPORTER_RECONCILE_MS', 5_000, { min: 100 }),
    workDir: path.resolve(r.string('EXPORTER_WORK_DIR', path.join(os.tmpdir(), 'flashduck-exporter'))),
    // Without a limit DuckDB may use 80 % of RAM buffering a large export; past the limit it spills to EXPORTER_WORK_DIR.
    memoryLimitMb: r.int('EXPORTER_MEMORY_LIMIT_MB', 1024, { min: 128 }),
    metricsPort: r.optionalInt('EXPORTER_METRICS_PORT', { min: 0, max: 65_535 }),
  });
}
