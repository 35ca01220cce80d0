export { loadMonitorConfig, type MonitorConfig } from './config.js';
export { startMonitor, type Monitor, type MonitorDeps } from './monitor.js';
