export { loadWriteApplierConfig, type WriteApplierConfig } from './config.js';
export { startWriteApplier, type WriteApplierDeps } from './write-applier.js';
