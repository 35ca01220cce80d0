import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows, waitFor } from '../helpers.js';
import { startStack, type Stack } from '../stack.js';

/**
 * A replica that cannot load a table version (here its part cache cannot be written) keeps trying: once the
 * fault passes, the table is served without a new version having to be published.
 */
describe('a table version that failed to load on a replica', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('loadretry');
  });
  afterAll(async () => stack?.stop());

  it('is served once the fault passes, with no change to the table', async () => {
    const url = `http://127.0.0.1:${stack.api.port}`;
    const loadErrors = async () => Number(/flashduck_query_snapshot_load_errors_total\{table="sales"\} (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
    const served = async () => (await fetch(`${url}/v1/tables`)).json().then((b: { tables: { name: string }[] }) => b.tables.some((t) => t.name === 'sales'));
    // A file where the replica's part cache folder belongs (in its own folder under QUERY_API_CACHE_DIR): no
    // part can be fetched until it is gone.
    const own = await readdir(path.join(stack.work, 'cache'));
    expect(own).toHaveLength(1);
    const blocker = path.join(stack.work, 'cache', own[0]!, 'parts');
    await rm(blocker, { recursive: true, force: true });
    await writeFile(blocker, 'not a folder');
    await writeFile(path.join(stack.dataDir, 'sales.csv'), 'id,amount\n1,10\n2,20\n');
    await stack.monitor.scanNow();
    // Tried again (after a pause), failing again while the fault lasts.
    await waitFor('two failed loads of sales', async () => (await loadErrors()) >= 2, 20_000);
    expect(await served()).toBe(false);

    await rm(blocker);
    await waitFor('sales served', async () => (await served()) && (await rows(stack.api.port, 'SELECT count(*) AS n FROM sales'))[0]?.n === 2, 20_000);
    const meta = (await (await fetch(`${url}/v1/tables/sales`)).json()) as { version: number };
    expect(meta.version).toBe(1);
  });
});
