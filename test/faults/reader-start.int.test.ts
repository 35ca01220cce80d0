import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, flashduckEnv, freePort, rows, startApps, stopApps, tempDir, uniquePrefix, waitFor } from '../helpers.js';

/**
 * A reader process that never gets ready (stuck at start) is replaced after CACHER_READER_START_MS, and the read
 * it held goes to another reader: the build does not wait for the read timeout, and the file is not blamed.
 */
describe('a reader process stuck at start', () => {
  const prefix = uniquePrefix('readerstart');
  let dataDir: string;
  let work: string;
  let marker: string;
  let port: number;
  let procs: AppProcess[] = [];

  beforeAll(async () => {
    dataDir = await tempDir('readerstart-data');
    work = await tempDir('readerstart-work');
    marker = path.join(work, 'readers-hang');
    await writeFile(marker, '');
    port = await freePort();
    procs = await startApps(['monitor', 'cacher', 'query-api'], {
      ...flashduckEnv(prefix, dataDir, work),
      MONITOR_POLL_MS: '100',
      MONITOR_SETTLE_MS: '0',
      CACHER_READ_PARALLELISM: '1',
      CACHER_READER_START_MS: '1500',
      CACHER_FAULT_HANG_START_WHILE: marker,
      QUERY_API_PORT: String(port),
      QUERY_API_REFRESH_MS: '200',
    });
  });
  afterAll(async () => stopApps(procs, prefix, dataDir, work));

  it('is replaced, and the file it held is read by the next reader', async () => {
    const cacher = procs.find((p) => p.app === 'cacher')!;
    await writeFile(path.join(dataDir, 'sales.csv'), 'id,amount\n1,10\n2,20\n');
    await cacher.waitForLog(/a reader process did not start in time; replacing it/, 10_000);
    await rm(marker); // readers start normally from now on
    await waitFor('sales served', async () => (await rows(port, 'SELECT count(*) AS n FROM sales'))[0]?.n === 2, 20_000);
    const table = (await (await fetch(`http://127.0.0.1:${port}/v1/tables/sales`)).json()) as { errors: unknown[] };
    expect(table.errors).toEqual([]);
    expect(cacher.logs.some((l) => l.includes('a reader process died while reading a file'))).toBe(false);
  });
});
