export * from './engine.js';
export * from './json-values.js';
export * from './arrow.js';
export * from './parts.js';
