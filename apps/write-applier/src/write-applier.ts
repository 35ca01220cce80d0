import { HeartbeatPublisher, closeRedis, createKeys, createRedis, type Component, type Logger, type Readiness } from '@flashduck/core';
import type { WriteApplierConfig } from './config.js';

export interface WriteApplierDeps {
  readonly config: WriteApplierConfig;
  readonly log: Logger;
}

/** Starts the write-applier: joins the deployment (heartbeat, health). */
export async function startWriteApplier(deps: WriteApplierDeps): Promise<Component> {
  const { config } = deps;
  const log = deps.log.child({ component: 'write-applier' });
  const keys = createKeys(config.prefix);
  const redis = createRedis(config, 'worker', log, 'write-applier');
  const heartbeat = new HeartbeatPublisher(redis, keys, log, {
    component: 'write-applier',
    instance: config.instanceId,
    info: () => ({ batchSize: config.batchSize }),
  });
  heartbeat.start();
  log.info({ batchSize: config.batchSize }, 'write-applier started');
  let stopping: Promise<void> | undefined;
  return {
    name: 'write-applier',
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
