import { EnvReader, readCommonConfig, type CommonConfig } from '@flashduck/core';

export interface WriteApplierConfig extends CommonConfig {
  readonly batchSize: number;
  readonly claimIdleMs: number;
  readonly maxDeliveries: number;
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
    metricsPort: r.optionalInt('WRITE_APPLIER_METRICS_PORT', { min: 0, max: 65_535 }),
  });
}
