import os from 'node:os';
import path from 'node:path';
import { EnvReader, readCommonConfig, type CommonConfig } from '@flashduck/core';

export interface WriteApplierConfig extends CommonConfig {
  readonly batchSize: number;
  readonly claimIdleMs: number;
  readonly maxDeliveries: number;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly statusRetainMs: number;
  readonly workDir: string;
  readonly metricsPort: number | undefined;
}

/** Reads the write-applier's settings; throws a ConfigError naming every bad variable. */
export function loadWriteApplierConfig(env: NodeJS.ProcessEnv): WriteApplierConfig {
  const r = new EnvReader(env);
  return r.finish({
    ...readCommonConfig(r),
    batchSize: r.int('WRITER_BATCH_SIZE', 100, { min: 1, max: 100_000 }),
    claimIdleMs: r.int('WRITER_CLAIM_IDLE_MS', 30_000, { min: 100 }),
    maxDeliveries: r.int('WRITER_MAX_DELIVERIES', 5, { min: 1 }),
    leaseMs: r.int('WRITER_LEASE_MS', 10_000, { min: 500 }),
    pollMs: r.int('WRITER_POLL_MS', 500, { min: 10 }),
    statusRetainMs: r.int('WRITER_STATUS_RETAIN_MS', 24 * 60 * 60 * 1000, { min: 1_000 }),
    workDir: path.resolve(r.string('WRITER_WORK_DIR', path.join(os.tmpdir(), 'flashduck-writer'))),
    metricsPort: r.optionalInt('WRITE_APPLIER_METRICS_PORT', { min: 0, max: 65_535 }),
  });
}
