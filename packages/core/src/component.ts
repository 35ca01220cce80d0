import type http from 'node:http';
import { redactConfig, type CommonConfig } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { closeServer, collectDefaultMetrics, serveHealth, type Readiness } from './metrics.js';
import { checkEvictionPolicy, closeRedis, createRedis, waitForRedis } from './redis.js';
import { Shutdown } from './shutdown.js';

/** A running part of FlashDuck (monitor, cacher, ...): what `main.ts` and `standalone` manage. */
export interface Component {
  readonly name: string;
  /** Whether the component can do its work now. */
  readiness(): Readiness;
  /** Stops intake, finishes in-flight work, closes clients. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Loads a config from the environment; on problems prints every one (each naming its variable)
 * to stderr and exits 1 before any connection is opened.
 */
export function loadConfigOrExit<C>(load: (env: NodeJS.ProcessEnv) => C, env: NodeJS.ProcessEnv = process.env): C {
  try {
    return load(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`flashduck: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/**
 * Before anything starts: waits for Redis as long as it takes (retrying with backoff, logging while it
 * waits) and checks that it will not evict FlashDuck's keys.
 */
export async function preflight(config: CommonConfig, log: Logger): Promise<void> {
  const redis = createRedis(config, 'worker', log, 'preflight');
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await waitForRedis(redis, 10_000);
        break;
      } catch {
        log.warn({ attempt }, 'waiting for Redis');
      }
    }
    await checkEvictionPolicy(redis, log, config.requireNoEviction);
  } finally {
    await closeRedis(redis);
  }
}

/**
 * Runs components until SIGTERM/SIGINT: serves `/healthz`, `/readyz` and `/metrics` on
 * `metricsPort` when set, and on a signal stops the components in reverse start order.
 */
export async function runComponents(options: {
  log: Logger;
  shutdownMs: number;
  metricsPort?: number | undefined;
  start: () => Promise<Component[]>;
}): Promise<Component[]> {
  const { log } = options;
  collectDefaultMetrics();
  const shutdown = new Shutdown(log, options.shutdownMs).listen();
  let components: Component[] = [];
  let server: http.Server | undefined;
  shutdown.add('components', async () => {
    for (const c of [...components].reverse()) await c.stop();
  });
  shutdown.add('health server', async () => {
    if (server) await closeServer(server);
  });
  let started = false;
  // Health first: while Redis is away and the components wait for it, /healthz answers and /readyz says why not.
  if (options.metricsPort !== undefined) {
    server = await serveHealth({
      port: options.metricsPort,
      log,
      readiness: () => {
        if (!started) return { ready: false, reason: 'starting (waiting for Redis)' };
        for (const c of components) {
          const r = c.readiness();
          if (!r.ready) return { ready: false, reason: `${c.name}: ${r.reason}` };
        }
        return { ready: true };
      },
    });
  }
  try {
    components = await options.start();
    started = true;
  } catch (err) {
    log.fatal({ err }, 'start failed');
    process.stderr.write(`flashduck: could not start: ${startFailure(err)}\n`);
    await shutdown.run();
    process.exit(1);
  }
  return components;
}

/** What went wrong at start, said for a person (the log line above has the stack). */
function startFailure(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { port?: number };
  if (e.code === 'EADDRINUSE') {
    return `port ${e.port ?? '?'} is already in use (another FlashDuck, or another program): choose a free one with --port <n> (QUERY_API_PORT; --metrics-port for a component's health port)`;
  }
  if (e.code === 'EACCES' && e.syscall === 'listen') return `not allowed to listen on port ${e.port ?? '?'}: choose one above 1023 with --port <n>`;
  return e.message ?? String(err);
}

/** `main.ts` of a component: config → logger → start → run until a signal. */
export async function runMain<C extends CommonConfig>(options: {
  component: string;
  loadConfig: (env: NodeJS.ProcessEnv) => C;
  metricsPort?: (config: C) => number | undefined;
  start: (config: C, log: Logger) => Promise<Component>;
  /** The component serves its own health endpoints and waits for Redis itself: check Redis in the background. */
  servesOwnHealth?: boolean;
}): Promise<void> {
  const config = loadConfigOrExit(options.loadConfig);
  const log = createLogger(config.logLevel, { instance: config.instanceId });
  log.info({ config: redactConfig(config) }, 'starting');
  await runComponents({
    log,
    shutdownMs: config.shutdownMs,
    metricsPort: options.metricsPort?.(config),
    start: async () => {
      if (options.servesOwnHealth) {
        preflight(config, log).catch((err: unknown) => {
          log.fatal({ err }, 'Redis is not safe to use');
          process.exit(1);
        });
      } else {
        await preflight(config, log);
      }
      return [await options.start(config, log)];
    },
  });
}
