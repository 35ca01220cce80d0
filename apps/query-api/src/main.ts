#!/usr/bin/env node
import { runMain } from '@flashduck/core';
import { loadQueryApiConfig } from './config.js';
import { startQueryApi } from './query-api.js';

await runMain({
  component: 'query-api',
  loadConfig: loadQueryApiConfig,
  start: (config, log) => startQueryApi({ config, log }),
  servesOwnHealth: true,
});
