#!/usr/bin/env node
import { runMain } from '@flashduck/core';
import { loadMonitorConfig } from './config.js';
import { startMonitor } from './monitor.js';

await runMain({
  component: 'monitor',
  loadConfig: loadMonitorConfig,
  metricsPort: (c) => c.metricsPort,
  start: (config, log) => startMonitor({ config, log }),
});
