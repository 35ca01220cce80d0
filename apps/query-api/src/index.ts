export { loadQueryApiConfig, type QueryApiConfig } from './config.js';
export { startQueryApi, type QueryApi, type QueryApiDeps } from './query-api.js';
export { enqueueWrite } from './writes/writes.js';
