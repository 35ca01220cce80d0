import {
  EnvReader,
  closeRedis,
  connectOnce,
  createKeys,
  loadConfigOrExit,
  readCommonConfig,
  readExportState,
  readHeartbeats,
  readIgnoredFiles,
  readTableMetas,
  readWriteStreams,
  redactUrl,
  type ExportState,
  type Heartbeat,
  type RedisClient,
  type TableMeta,
} from '@flashduck/core';
import { REDIS_FLAGS, helpText, parseCommand, type CommandSpec } from '../args.js';
import { age, formatTable } from '../format-table.js';

const JSON_FLAG = { json: { type: 'boolean', help: 'print JSON instead of a table' } } as const;

export const tablesSpec: CommandSpec = {
  name: 'tables',
  summary: 'Lists the tables with their current snapshot: version, rows, columns, files, errors and age.',
  usage: 'tables [--json]',
  flags: { ...REDIS_FLAGS, ...JSON_FLAG },
};

export const statusSpec: CommandSpec = {
  name: 'status',
  summary: 'Shows every live component instance (from heartbeats), every table with its snapshot and errors, and each writes stream (length, pending, lag, dead letters).',
  usage: 'status [--json]',
  flags: { ...REDIS_FLAGS, ...JSON_FLAG },
};

/** Raised when the Redis reached holds nothing of FlashDuck under the prefix: a wrong address or prefix. */
export class NoDeploymentError extends Error {}

/**
 * Runs `fn` against the configured Redis; refuses (NoDeploymentError) when no FlashDuck deployment ever ran there
 * under the prefix, rather than reporting an empty deployment.
 */
async function withRedis<T>(fn: (redis: RedisClient, keys: ReturnType<typeof createKeys>) => Promise<T>): Promise<T> {
  const config = loadConfigOrExit((env) => {
    const r = new EnvReader(env);
    return r.finish(readCommonConfig(r));
  });
  const redis = await connectOnce(config);
  try {
    const keys = createKeys(config.prefix);
    // One key per call: on Redis Cluster the three live in different slots.
    const present = await Promise.all([keys.tables, keys.folderRecord, keys.heartbeats].map((k) => redis.exists(k)));
    if (present.every((n) => n === 0)) {
      const where = config.redisClusterNodes?.length ? `the Redis Cluster at ${config.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}` : `the Redis at ${redactUrl(config.redisUrl)}`;
      throw new NoDeploymentError(
        `no FlashDuck deployment here: ${where} holds nothing under the prefix "${config.prefix}" (no component has run with it). Start FlashDuck (npm start), or point --redis-url / FLASHDUCK_REDIS_URL and --prefix / FLASHDUCK_PREFIX at the deployment.`,
      );
    }
    return await fn(redis, keys);
  } finally {
    await closeRedis(redis);
  }
}

type Exported = Map<string, ExportState>;

function tableRows(metas: Iterable<TableMeta>, now: number, exported: Exported = new Map()): unknown[][] {
  return [...metas].map((m) => {
    const e = exported.get(m.table);
    const written = e?.written ? `v${e.written.version}, ${age(e.written.at, now)} ago` : '-';
    return [m.table, m.version, m.rows, m.columns.length, m.files.length, m.errors.length, `${(m.bytes / 1024 / 1024).toFixed(1)} MB`, age(m.updatedAt, now), e?.failing ? `${written}; v${e.failing.version} failed` : written];
  });
}
const TABLE_HEADER = ['table', 'version', 'rows', 'columns', 'files', 'errors', 'snapshot', 'age', 'export'];

async function readExported(redis: RedisClient, keys: ReturnType<typeof createKeys>, tables: Iterable<string>): Promise<Exported> {
  const out: Exported = new Map();
  for (const t of tables) out.set(t, await readExportState(redis, keys, t));
  return out;
}

function printExportFailures(exported: Exported): void {
  const lines = [...exported].flatMap(([t, e]) => (e.failing ? [`  ${t}: v${e.failing.version}: ${e.failing.message}`] : []));
  if (lines.length) process.stdout.write(`\nExport failures (the previous export stays in place; retried):\n${lines.join('\n')}\n`);
}

function printErrors(metas: Iterable<TableMeta>): void {
  const lines = [...metas].flatMap((m) => m.errors.map((e) => `  ${m.table}: ${e.file}: ${e.message}`));
  if (lines.length) process.stdout.write(`\nFile errors:\n${lines.join('\n')}\n`);
}

/** `flashduck tables`. */
export async function runTablesCommand(argv: string[]): Promise<number> {
  const { values, help } = parseCommand(tablesSpec, argv);
  if (help) {
    process.stdout.write(helpText(tablesSpec));
    return 0;
  }
  const { metas, exported } = await withRedis(async (redis, keys) => {
    const metas = (await readTableMetas(redis, keys)).metas;
    return { metas, exported: await readExported(redis, keys, metas.keys()) };
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ tables: [...metas.values()] }, null, 2)}\n`);
    return 0;
  }
  if (metas.size === 0) {
    process.stdout.write('No tables yet: put CSV, TSV, JSON, NDJSON or Parquet files in the data folder.\n');
    return 0;
  }
  process.stdout.write(`${formatTable(TABLE_HEADER, tableRows(metas.values(), Date.now(), exported))}\n`);
  printErrors(metas.values());
  return 0;
}

function describeInfo(hb: Heartbeat): string {
  const i = hb.info;
  switch (hb.component) {
    case 'monitor':
      return `${String(i.role)}; ${String(i.files ?? 0)} files in ${String(i.tables ?? 0)} tables; last scan ${String(i.ms ?? '?')} ms`;
    case 'cacher': {
      const q = (i.queue ?? {}) as Record<string, number>;
      return `building ${String(i.building ?? 0)}; queue wait ${q.wait ?? 0}, active ${q.active ?? 0}, delayed ${q.delayed ?? 0}`;
    }
    case 'query-api':
      return `port ${String(i.port ?? '?')}; ${Object.keys(i.tables ?? {}).length} tables; ${String(i.queued ?? 0)} queued`;
    default:
      return Object.entries(i).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ');
  }
}

/** `flashduck status`. */
export async function runStatusCommand(argv: string[]): Promise<number> {
  const { values, help } = parseCommand(statusSpec, argv);
  if (help) {
    process.stdout.write(helpText(statusSpec));
    return 0;
  }
  const { components, metas, writes, exported, ignored } = await withRedis(async (redis, keys) => {
    const metas = (await readTableMetas(redis, keys)).metas;
    return {
      components: await readHeartbeats(redis, keys),
      metas,
      writes: await readWriteStreams(redis, keys),
      exported: await readExported(redis, keys, metas.keys()),
      ignored: await readIgnoredFiles(redis, keys),
    };
  });
  if (values.json) {
    const exports = Object.fromEntries([...exported].flatMap(([t, e]) => (e.written ? [[t, { version: e.written.version, at: e.written.at }]] : [])));
    const exportFailures = Object.fromEntries([...exported].flatMap(([t, e]) => (e.failing ? [[t, e.failing]] : [])));
    process.stdout.write(`${JSON.stringify({ components, tables: [...metas.values()], writes, exports, exportFailures, ignored: ignored ?? { files: [], total: 0 } }, null, 2)}\n`);
    return 0;
  }
  const now = Date.now();
  process.stdout.write('Components\n');
  if (components.length === 0) process.stdout.write('  none alive (no heartbeat within its TTL)\n');
  else {
    process.stdout.write(
      `${formatTable(
        ['component', 'instance', 'host', 'pid', 'up', 'last loop', 'details'],
        components.map((c) => [c.component, c.instance, c.host, c.pid, age(c.startedAt, now), `${age(c.lastLoopAt, now)} ago`, describeInfo(c)]),
        60,
      )}\n`,
    );
  }
  process.stdout.write('\nTables\n');
  if (metas.size === 0) process.stdout.write('  none yet\n');
  else process.stdout.write(`${formatTable(TABLE_HEADER, tableRows(metas.values(), now, exported))}\n`);
  printErrors(metas.values());
  printExportFailures(exported);
  if (ignored?.total) {
    const more = ignored.total > ignored.files.length ? `\n  … and ${ignored.total - ignored.files.length} more` : '';
    process.stdout.write(`\nIgnored files (FlashDuck reads .csv .tsv .json .jsonl .ndjson .parquet .arrow .feather, text ones also .gz/.zst)\n${ignored.files.map((f) => `  ${f}`).join('\n')}${more}\n`);
  }
  if (writes.length) {
    process.stdout.write('\nWrites\n');
    process.stdout.write(
      `${formatTable(
        ['table', 'stream', 'pending', 'lag', 'dead letters', 'last applied'],
        writes.map((w) => [w.table, w.length, w.pending, w.lag ?? '?', w.deadLetters, w.applied ?? '-']),
      )}\n`,
    );
  }
  return 0;
}
