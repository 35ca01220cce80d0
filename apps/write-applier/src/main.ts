#!/usr/bin/env node
import { runMain } from '@flashduck/core';
import { loadWriteApplierConfig } from './config.js';
import { startWriteApplier } from './write-applier.js';

await runMain({
  component: 'write-applier',
  loadConfig: loadWriteApplierConfig,
  metricsPort: (c) => c.metricsPort,
  start: (config, log) => startWriteApplier({ config, log }),
});
