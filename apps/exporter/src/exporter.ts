import { HeartbeatPublisher, closeRedis, createKeys, createRedis, type Component, type Logger, type Readiness } from '@flashduck/core';
import type { ExporterConfig } from './config.js';

export interface ExporterDeps {
  readonly config: ExporterConfig;
  readonly log: Logger;
}

/** Starts the exporter: joins the deployment (heartbeat, health). */
export async function startExporter(deps: ExporterDeps): Promise<Component> {
  const { config } = deps;
  const log = deps.log.child({ component: 'exporter' });
  const keys = createKeys(config.prefix);
  const redis = createRedis(config, 'worker', log, 'exporter');
  const heartbeat = new HeartbeatPublisher(redis, keys, log, {
    component: 'exporter',
    instance: config.instanceId,
    info: () => ({ exportDir: config.exportDir, compression: config.compression }),
  });
  heartbeat.start();
  log.info({ exportDir: config.exportDir }, 'exporter started');
  let stopping: Promise<void> | undefined;
  return {
    name: 'exporter',
    readiness: (): Readiness => (redis.status === 'ready' ? { ready: true } : { ready: false, reason: `redis ${redis.status}` }),
    stop() {
      stopping ??= (async () => {
        await heartbeat.stop();
        await closeRedis(redis);
      })();
      return stopping;
    },
  };
}
