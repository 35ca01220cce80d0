#!/usr/bin/env node
import { runMain } from '@flashduck/core';
import { startCacher } from './cacher.js';
import { loadCacherConfig } from './config.js';

await runMain({
  component: 'cacher',
  loadConfig: loadCacherConfig,
  metricsPort: (c) => c.metricsPort,
  start: (config, log) => startCacher({ config, log }),
});
