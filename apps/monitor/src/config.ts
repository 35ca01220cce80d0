import { EnvReader, readCommonConfig, type CommonConfig } from '@flashduck/core';

export interface MonitorConfig extends CommonConfig {
  readonly pollMs: number;
  readonly watch: boolean;
  readonly settleMs: number;
  readonly leaseMs: number;
  readonly metricsPort: number | undefined;
}

/** Reads the monitor's settings; throws a ConfigError naming every bad variable. */
export function loadMonitorConfig(env: NodeJS.ProcessEnv): MonitorConfig {
  const r = new EnvReader(env);
  return r.finish({
    ...readCommonConfig(r),
    pollMs: r.int('MONITOR_POLL_MS', 1_000, { min: 10 }),
    watch: r.bool('MONITOR_WATCH', false),
    settleMs: r.int('MONITOR_SETTLE_MS', 500, { min: 0 }),
    leaseMs: r.int('MONITOR_LEASE_MS', 10_000, { min: 500 }),
    metricsPort: r.optionalInt('MONITOR_METRICS_PORT', { min: 0, max: 65_535 }),
  });
}
