import http from 'node:http';
import client from 'prom-client';
import type { Logger } from './logger.js';

/**
 * The process-wide Prometheus registry. In `standalone` every component registers here, so one
 * `/metrics` shows them all. Metric getters are idempotent: asking twice returns the same metric.
 */
export const registry = new client.Registry();
let defaultsCollected = false;

/** Starts Node's default process metrics (once per process). */
export function collectDefaultMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  client.collectDefaultMetrics({ register: registry, prefix: 'flashduck_' });
}

function existing<T>(name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}

export function counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): client.Counter<L> {
  return existing<client.Counter<L>>(name) ?? new client.Counter({ name, help, labelNames, registers: [registry] });
}

export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): client.Gauge<L> {
  return existing<client.Gauge<L>>(name) ?? new client.Gauge({ name, help, labelNames, registers: [registry] });
}

export function histogram<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets: number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
): client.Histogram<L> {
  return existing<client.Histogram<L>>(name) ?? new client.Histogram({ name, help, labelNames, buckets, registers: [registry] });
}

/** Readiness of a component: ready, or why not. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/**
 * Serves `/healthz` (the process answers), `/readyz` (the component can do its work) and
 * `/metrics` for a worker that is not an HTTP server. Resolves once listening.
 */
export async function serveHealth(options: {
  host?: string;
  port: number;
  readiness: () => Readiness | Promise<Readiness>;
  log: Logger;
}): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = req.url?.split('?')[0];
      if (url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      } else if (url === '/readyz') {
        const r = await options.readiness();
        res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason }));
      } else if (url === '/metrics') {
        res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"not found"}}');
      }
    })().catch((err: unknown) => {
      options.log.warn({ err }, 'health endpoint failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  options.log.info({ port: options.port }, 'health and metrics listening');
  return server;
}

/** Closes a server, dropping idle keep-alive connections. */
export async function closeServer(server: http.Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
