import { loadCacherConfig, startCacher, type Cacher } from '@flashduck/cacher';
import { createLogger, type Component } from '@flashduck/core';
import { loadMonitorConfig, startMonitor, type Monitor } from '@flashduck/monitor';
import { loadQueryApiConfig, startQueryApi, type QueryApi } from '@flashduck/query-api';
import { TEST_REDIS_URL, deletePrefix, removeDir, tempDir, uniquePrefix, flashduckEnv } from './helpers.js';

/** monitor + cacher + query-api in this process, on a temp data dir and a unique prefix. */
export interface Stack {
  readonly prefix: string;
  readonly dataDir: string;
  readonly work: string;
  readonly env: Record<string, string>;
  readonly monitor: Monitor;
  readonly cacher: Cacher;
  readonly api: QueryApi;
  stop(): Promise<void>;
}

export async function startStack(label: string, extraEnv: Record<string, string> = {}, seed?: (dataDir: string) => Promise<void>): Promise<Stack> {
  const prefix = uniquePrefix(label);
  const dataDir = await tempDir(`${label}-data`);
  const work = await tempDir(`${label}-work`);
  if (seed) await seed(dataDir);
  const env: Record<string, string> = {
    ...flashduckEnv(prefix, dataDir, work),
    MONITOR_POLL_MS: '100',
    MONITOR_SETTLE_MS: '0',
    CACHER_RECONCILE_MS: '500',
    QUERY_API_PORT: '0',
    QUERY_API_REFRESH_MS: '300',
    ...extraEnv,
  };
  const log = createLogger('silent');
  const cacher = await startCacher({ config: loadCacherConfig(env), log });
  const monitor = await startMonitor({ config: loadMonitorConfig(env), log });
  const api = await startQueryApi({ config: loadQueryApiConfig(env), log });
  const components: Component[] = [cacher, monitor, api];
  return {
    prefix,
    dataDir,
    work,
    env,
    monitor,
    cacher,
    api,
    async stop() {
      for (const c of [...components].reverse()) await c.stop();
      await deletePrefix(TEST_REDIS_URL, prefix);
      await removeDir(dataDir);
      await removeDir(work);
    },
  };
}
