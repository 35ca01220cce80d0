import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Lease, closeRedis, connectOnce, createKeys, createLogger, loadConfigOrExit } from '@flashduck/core';
import { exportTable, loadExporterConfig, readMeta, writeParquet } from '@flashduck/exporter';
import { DIR_FLAGS, REDIS_FLAGS, UsageError, helpText, parseCommand, type CommandSpec } from '../args.js';

export const exportSpec: CommandSpec = {
  name: 'export',
  summary:
    'Exports a table from its current snapshot now: to <export dir>/<table>.parquet with its manifest (as the exporter does),\n' +
    'or to --out. Compression and row group size come from EXPORTER_COMPRESSION and EXPORTER_ROW_GROUP_SIZE.',
  usage: 'export <table> [--out <file.parquet>]',
  positionals: true,
  flags: {
    ...REDIS_FLAGS,
    ...DIR_FLAGS,
    out: { type: 'string', short: 'o', help: 'write the Parquet file here instead of the export dir' },
    compression: { type: 'string', env: 'EXPORTER_COMPRESSION', help: 'zstd (default), snappy, gzip or uncompressed' },
  },
};

/** `flashduck export`. */
export async function runExportCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(exportSpec, argv);
  if (help) {
    process.stdout.write(helpText(exportSpec));
    return 0;
  }
  const [table, extra] = positionals;
  if (!table || extra) throw new UsageError(`name one table: flashduck ${exportSpec.usage}`);
  const config = loadConfigOrExit(loadExporterConfig);
  const keys = createKeys(config.prefix);
  const redis = await connectOnce(config);
  try {
    const meta = await readMeta(redis, keys, table);
    if (!meta) throw new Error(`table "${table}" has no snapshot (unknown table, or not built yet); see flashduck tables`);
    const options = { compression: config.compression, rowGroupSize: config.rowGroupSize, workDir: config.workDir, memoryLimitMb: config.memoryLimitMb };
    const started = Date.now();
    if (values.out) {
      const out = path.resolve(String(values.out));
      // Without the export lease: a work dir of its own, so a running exporter's cached parts and pieces are left alone.
      const workDir = await mkdtemp(path.join(os.tmpdir(), 'flashduck-export-'));
      try {
        const r = await writeParquet(redis, keys, meta, out, { ...options, workDir });
        process.stdout.write(`${out}\n`);
        process.stderr.write(`exported ${table} v${meta.version}: ${r.rows} rows, ${r.bytes} bytes, ${config.compression}, ${Date.now() - started} ms\n`);
      } finally {
        await rm(workDir, { recursive: true, force: true });
      }
      return 0;
    }
    const lease = new Lease(redis, { owner: keys.tableExportLease(table), epoch: keys.tableExportEpoch(table) }, 120_000, `cli-${process.pid}`);
    if (!(await lease.tryAcquire())) throw new Error(`an exporter is writing ${table} right now; retry in a moment`);
    try {
      const r = await exportTable({ redis, keys, log: createLogger('silent'), exportDir: config.exportDir, options }, meta, async () => (await lease.holder())?.startsWith(`${lease.token}|`) ?? false);
      process.stdout.write(`${r.path}\n`);
      process.stderr.write(`exported ${table} v${r.version}: ${r.rows} rows, ${r.bytes} bytes, ${config.compression}, ${r.ms} ms\n`);
    } finally {
      await lease.release();
    }
    return 0;
  } finally {
    await closeRedis(redis);
  }
}
