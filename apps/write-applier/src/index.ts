export { loadWriteApplierConfig, type WriteApplierConfig } from './config.js';
export { startWriteApplier, type WriteApplier, type WriteApplierDeps } from './write-applier.js';
