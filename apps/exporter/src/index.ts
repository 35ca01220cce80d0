export { loadExporterConfig, COMPRESSIONS, type Compression, type ExporterConfig } from './config.js';
export { startExporter, type ExporterDeps } from './exporter.js';
