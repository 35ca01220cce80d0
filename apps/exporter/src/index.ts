export { loadExporterConfig, COMPRESSIONS, type Compression, type ExporterConfig } from './config.js';
export { startExporter, type Exporter, type ExporterDeps } from './exporter.js';
export { exportTable, readMeta, writeParquet, type ExportManifest, type ExportResult } from './export-table.js';
