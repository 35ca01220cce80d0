export { loadCacherConfig, type CacherConfig } from './config.js';
export { startCacher, type Cacher, type CacherDeps } from './cacher.js';
