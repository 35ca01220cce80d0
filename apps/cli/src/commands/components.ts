import { existsSync, statSync } from 'node:fs';
import { startCacher, loadCacherConfig } from '@flashduck/cacher';
import {
  ConfigError,
  createLogger,
  isInside,
  loadConfigOrExit,
  preflight,
  redactConfig,
  runComponents,
  type CommonConfig,
  type Component,
  type Logger,
} from '@flashduck/core';
import { loadExporterConfig, startExporter } from '@flashduck/exporter';
import { loadMonitorConfig, startMonitor } from '@flashduck/monitor';
import { loadQueryApiConfig, startQueryApi, type QueryApi } from '@flashduck/query-api';
import { loadWriteApplierConfig, startWriteApplier } from '@flashduck/write-applier';
import { DIR_FLAGS, REDIS_FLAGS, helpText, parseCommand, type CommandSpec } from '../args.js';
import { REDIS_HELP, redisAnswers, startPrivateRedis } from '../ensure-redis.js';
import { recordStandalone } from '../runtime-state.js';

interface ComponentDef {
  readonly summary: string;
  readonly flags: CommandSpec['flags'];
  readonly load: (env: NodeJS.ProcessEnv) => CommonConfig & { metricsPort?: number | undefined };
  readonly start: (config: never, log: Logger) => Promise<Component>;
}

const PORT_FLAG = { port: { type: 'string', env: 'QUERY_API_PORT', help: 'HTTP port (QUERY_API_PORT, default 8080)' } } as const;
const metricsFlag = (env: string) => ({ 'metrics-port': { type: 'string', env, help: `serve /healthz, /readyz, /metrics here (${env})` } }) as const;

/** The five components, as `flashduck <component>` runs them. */
export const COMPONENTS: Record<string, ComponentDef> = {
  monitor: {
    summary: 'Scans the data folder and publishes what changed, per table (one leader at a time).',
    flags: { ...REDIS_FLAGS, ...DIR_FLAGS, ...metricsFlag('MONITOR_METRICS_PORT') },
    load: loadMonitorConfig,
    start: (config, log) => startMonitor({ config, log }),
  },
  cacher: {
    summary: 'Rebuilds the snapshot of each changed table and stores it, versioned, in Redis.',
    flags: { ...REDIS_FLAGS, ...DIR_FLAGS, ...metricsFlag('CACHER_METRICS_PORT') },
    load: loadCacherConfig,
    start: (config, log) => startCacher({ config, log }),
  },
  'query-api': {
    summary: 'Serves SQL over HTTP (JSON, CSV, NDJSON, Arrow) and the web console from the current snapshots.',
    flags: { ...REDIS_FLAGS, ...DIR_FLAGS, ...PORT_FLAG, host: { type: 'string', env: 'QUERY_API_HOST', help: 'listen address (QUERY_API_HOST, default 0.0.0.0)' } },
    load: loadQueryApiConfig,
    start: (config, log) => startQueryApi({ config, log }),
  },
  exporter: {
    summary: 'Writes one consolidated, compressed Parquet file per table into the export folder.',
    flags: { ...REDIS_FLAGS, ...DIR_FLAGS, ...metricsFlag('EXPORTER_METRICS_PORT') },
    load: loadExporterConfig,
    start: (config, log) => startExporter({ config, log }),
  },
  'write-applier': {
    summary: 'Applies queued upserts and deletes to the data files, in order, losing nothing.',
    flags: { ...REDIS_FLAGS, ...DIR_FLAGS, ...metricsFlag('WRITE_APPLIER_METRICS_PORT') },
    load: loadWriteApplierConfig,
    start: (config, log) => startWriteApplier({ config, log }),
  },
};

/** `flashduck <component>`: runs one component until SIGTERM/SIGINT. */
export async function runComponentCommand(name: string, argv: string[]): Promise<void> {
  const def = COMPONENTS[name]!;
  const spec: CommandSpec = { name, summary: def.summary, usage: `${name} [options]`, flags: def.flags };
  const { help } = parseCommand(spec, argv);
  if (help) return void process.stdout.write(helpText(spec));
  const config = loadConfigOrExit(def.load);
  const log = createLogger(config.logLevel, { instance: config.instanceId });
  log.info({ config: redactConfig(config) }, `starting ${name}`);
  await runComponents({
    log,
    shutdownMs: config.shutdownMs,
    metricsPort: config.metricsPort,
    start: async () => {
      // query-api answers /readyz (not ready) itself while it waits for Redis; the others wait here.
      if (name === 'query-api') void preflight(config, log).catch((err: unknown) => {
        log.fatal({ err }, 'Redis is not safe to use');
        process.exit(1);
      });
      else await preflight(config, log);
      return [await def.start(config as never, log)];
    },
  });
}

export const standaloneSpec: CommandSpec = {
  name: 'standalone',
  summary:
    'Runs monitor, cacher, query-api, exporter and write-applier in one process (still coordinating through Redis).\n' +
    'When no Redis answers and FLASHDUCK_REDIS_URL is not set, starts a private redis-server if one is installed.',
  usage: 'standalone [options]',
  flags: { ...REDIS_FLAGS, ...DIR_FLAGS, ...PORT_FLAG },
};

/** `flashduck standalone`. */
export async function runStandalone(argv: string[]): Promise<void> {
  const explicitRedis = process.env.FLASHDUCK_REDIS_URL !== undefined || argv.some((a) => a.startsWith('--redis-url'));
  const { help } = parseCommand(standaloneSpec, argv);
  if (help) return void process.stdout.write(helpText(standaloneSpec));
  const env = process.env;
  const url = env.FLASHDUCK_REDIS_URL ?? 'redis://127.0.0.1:6379';
  // A cluster or Sentinel URL is always explicit: the components wait for it (and say so) like any deployment.
  if (!env.FLASHDUCK_REDIS_CLUSTER_NODES && /^rediss?:\/\//.test(url)) {
    if (!(await redisAnswers(url))) {
      const priv = explicitRedis ? null : await startPrivateRedis();
      if (!priv) {
        process.stderr.write(`flashduck: cannot reach Redis at ${url}.\n${REDIS_HELP}\n`);
        process.exit(1);
      }
      env.FLASHDUCK_REDIS_URL = priv.url;
      process.stderr.write(`flashduck: no Redis at ${url}; started a private redis-server at ${priv.url} (data is not kept)\n`);
    }
  }
  const problems: string[] = [];
  const configs = Object.fromEntries(
    Object.entries(COMPONENTS).map(([name, def]) => {
      try {
        return [name, def.load(env)];
      } catch (err) {
        if (err instanceof ConfigError) problems.push(...err.problems);
        else throw err;
        return [name, null];
      }
    }),
  ) as Record<string, CommonConfig | null>;
  const common = configs.monitor;
  if (problems.length || !common) {
    process.stderr.write(`flashduck: invalid configuration:\n  - ${[...new Set(problems)].join('\n  - ')}\n`);
    process.exit(1);
  }
  if (!existsSync(common.dataDir) || !statSync(common.dataDir).isDirectory()) {
    process.stderr.write(`flashduck: the data folder ${common.dataDir} does not exist; create it or pass --data-dir\n`);
    process.exit(1);
  }
  if (isInside(common.dataDir, common.exportDir)) {
    process.stderr.write(`flashduck: the export folder ${common.exportDir} is inside the data folder; choose one outside it\n`);
    process.exit(1);
  }
  const log = createLogger(common.logLevel, { instance: common.instanceId });
  const order = ['cacher', 'monitor', 'query-api', 'exporter', 'write-applier'];
  const components = await runComponents({
    log,
    shutdownMs: common.shutdownMs,
    start: async () => {
      await preflight(common, log);
      const started: Component[] = [];
      try {
        for (const name of order) started.push(await COMPONENTS[name]!.start(configs[name] as never, log));
      } catch (err) {
        // Stop the ones already running (a cacher's reader processes, a monitor's scans) before exiting.
        for (const c of started.reverse()) await c.stop().catch(() => undefined);
        throw err;
      }
      return started;
    },
  });
  const api = components.find((c) => c.name === 'query-api') as QueryApi | undefined;
  recordStandalone({ redisUrl: env.FLASHDUCK_REDIS_URL ?? common.redisUrl, prefix: common.prefix, apiUrl: `http://127.0.0.1:${api?.port ?? 8080}` });
  process.stderr.write(
    `\nFlashDuck is running.\n  web console  http://localhost:${api?.port ?? '?'}/\n${api?.pgPort ? `  PostgreSQL   psql -h localhost -p ${api.pgPort} -U me -d flashduck\n` : ''}  data         ${common.dataDir}\n  exports      ${common.exportDir}\n  redis        ${env.FLASHDUCK_REDIS_URL ?? common.redisUrl} (prefix ${common.prefix})\nPress Ctrl+C to stop.\n\n`,
  );
}
