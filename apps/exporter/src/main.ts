#!/usr/bin/env node
import { runMain } from '@flashduck/core';
import { loadExporterConfig } from './config.js';
import { startExporter } from './exporter.js';

await runMain({
  component: 'exporter',
  loadConfig: loadExporterConfig,
  metricsPort: (c) => c.metricsPort,
  start: (config, log) => startExporter({ config, log }),
});
