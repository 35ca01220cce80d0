import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, ROOT, TEST_REDIS_URL, deletePrefix, freePort, removeDir, tempDir, uniquePrefix, waitFor, flashduckEnv } from '../helpers.js';

const CHROMIUM = process.env.FLASHDUCK_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'test-results', 'console');
// CI installs Debian's Chromium (.ci/run); elsewhere these tests need it too, and say so instead of passing silently.
const haveChromium = existsSync(CHROMIUM);

describe.skipIf(!haveChromium && !process.env.CI)('web console in a real browser', () => {
  const prefix = uniquePrefix('console');
  let dataDir: string;
  let work: string;
  let port: number;
  let pgPort: number;
  let browser: Browser;
  let page: Page;
  const procs: AppProcess[] = [];
  // From the top: the sticky header would be drawn where the page was scrolled to.
  const shot = async (name: string) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`Chromium is not installed at ${CHROMIUM}: apt-get install chromium (or set FLASHDUCK_CHROMIUM)`);
    await mkdir(SHOTS, { recursive: true });
    dataDir = await tempDir('console-data');
    work = await tempDir('console-work');
    await cp(path.join(ROOT, 'examples/data'), dataDir, { recursive: true });
    port = await freePort();
    pgPort = await freePort();
    const env = {
      ...flashduckEnv(prefix, dataDir, work),
      MONITOR_POLL_MS: '200',
      MONITOR_SETTLE_MS: '100',
      EXPORTER_DEBOUNCE_MS: '200',
      QUERY_API_PORT: String(port),
      QUERY_API_PG_PORT: String(pgPort),
    };
    // Instance ids as Kubernetes gives them (POD_NAME): the console shows them.
    for (const app of ['monitor', 'cacher', 'query-api', 'exporter', 'write-applier']) procs.push(AppProcess.start(app, { ...env, POD_NAME: `flashduck-${app}-7d9f-x${app.length}` }));
    await Promise.all(procs.map((p) => p.waitForLog(/"msg":"(monitor started|cacher started|query-api listening|exporter started|write-applier started)"/)));
    await waitFor('examples served', async () => ((await (await fetch(`http://127.0.0.1:${port}/v1/tables`)).json()) as { tables: unknown[] }).tables.length === 4, 30_000);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1366, height: 860 }, acceptDownloads: true });
    page.on('pageerror', (err) => console.error('page error:', err.message));
    await page.goto(`http://127.0.0.1:${port}/`);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    await deletePrefix(TEST_REDIS_URL, prefix);
    if (dataDir) await removeDir(dataDir);
    if (work) await removeDir(work);
  });

  it('shows every component and table on the status view', async () => {
    await page.waitForSelector('[data-table="orders"]');
    await page.waitForFunction(() => document.querySelectorAll('#components tbody tr').length >= 5);
    const components = await page.$$eval('#components tbody tr td:first-child', (tds) => tds.map((t) => t.textContent).sort());
    expect(components).toEqual(['cacher', 'exporter', 'monitor', 'query-api', 'write-applier']);
    const instances = await page.$$eval('#components [data-instance]', (tds) => tds.map((t) => t.getAttribute('data-instance')).sort());
    expect(instances).toEqual(['cacher', 'exporter', 'monitor', 'query-api', 'write-applier'].map((a) => `flashduck-${a}-7d9f-x${a.length}`));
    expect(await page.textContent('[data-instance="flashduck-query-api-7d9f-x9"]')).toContain('this console');
    expect(await page.textContent('#components')).toContain(`PostgreSQL ${pgPort}`);
    expect(await page.textContent('#components-summary')).toBe('1 × cacher · 1 × exporter · 1 × monitor · 1 × query-api · 1 × write-applier');
    expect(await page.textContent('[data-rows="orders"]')).toBe('12');
    await shot('status');
  });

  it('runs a query with Ctrl+Enter and shows the rows, types and versions', async () => {
    await page.click('a[data-view="sql"]');
    await page.fill('#sql', 'SELECT order_id, amount FROM orders ORDER BY order_id');
    await page.press('#sql', 'Control+Enter');
    await page.waitForFunction(() => document.querySelectorAll('#result tbody tr').length === 12);
    expect(await page.textContent('#result thead')).toContain('BIGINT');
    expect(await page.textContent('#result-status')).toMatch(/12 rows · [\d.]+ ms · read orders v\d+/);
    expect(await page.$$eval('#history li', (li) => li.map((l) => l.textContent))).toContain('SELECT order_id, amount FROM orders ORDER BY order_id');
    await shot('sql');
  });

  it('plots the result as a chart', async () => {
    await page.selectOption('#chart-type', 'bar');
    await page.selectOption('#chart-x', 'order_id');
    await page.selectOption('#chart-y', 'amount');
    await page.click('#chart-draw');
    // Chart.js renders on the next animation frame after sizing the canvas: wait for painted pixels.
    const painted = await page.waitForFunction(() => {
      const canvas = document.getElementById('chart') as HTMLCanvasElement;
      const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
      return n > 1000 ? n : false;
    }).then((h) => h.jsonValue() as Promise<number>);
    expect(painted).toBeGreaterThan(1000);
    await shot('chart');
  });

  it('labels a line chart over timestamps with short dates and times', async () => {
    await page.fill('#sql', 'SELECT ordered_at, amount FROM orders ORDER BY ordered_at');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelectorAll('#result tbody tr').length === 12);
    await page.selectOption('#chart-type', 'line');
    await page.selectOption('#chart-x', 'ordered_at');
    await page.selectOption('#chart-y', 'amount');
    await page.click('#chart-draw');
    const labels = await page.evaluate(() => (window as unknown as { Chart: { getChart(c: unknown): { data: { labels: string[] } } } }).Chart.getChart(document.getElementById('chart')).data.labels);
    expect(labels[0]).toBe('2024-01-03 09:15');
    expect(labels.every((l) => /^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?$/.test(l))).toBe(true);
    await shot('chart-line');
  });

  it('a new query clears the previous chart, and an error clears the previous rows', async () => {
    const chartOf = () => page.evaluate(() => (window as unknown as { Chart: { getChart(c: unknown): unknown } }).Chart.getChart(document.getElementById('chart')) !== undefined);
    expect(await chartOf()).toBe(true);
    await page.fill('#sql', 'SELECT 1 AS x');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelectorAll('#result tbody tr').length === 1);
    expect(await chartOf()).toBe(false);
    await page.fill('#sql', 'SELEC nonsense');
    await page.click('#run');
    await page.waitForFunction(() => (document.getElementById('sql-error')?.textContent ?? '').length > 0);
    expect(await page.$$('#result tbody tr')).toHaveLength(0);
    await shot('sql-error');
    // The CSV download below uses the orders query again.
    await page.fill('#sql', 'SELECT order_id, amount FROM orders ORDER BY order_id');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelectorAll('#result tbody tr').length === 12);
  });

  it('has a favicon of its own', async () => {
    expect(await page.getAttribute('link[rel="icon"]', 'href')).toBe('favicon.svg');
    const res = await fetch(`http://127.0.0.1:${port}/favicon.svg`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/image\/svg\+xml/);
  });

  it('downloads the result as CSV', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-download="csv"]')]);
    const file = path.join(work, 'result.csv');
    await download.saveAs(file);
    const text = await readFile(file, 'utf8');
    expect(text.split('\n')[0]).toBe('order_id,amount');
    expect(text.trim().split('\n')).toHaveLength(13);
  });

  it('compares the cache with DuckDB re-reading the files', async () => {
    await page.selectOption('#compare-table', 'orders');
    await page.click('#compare');
    await page.waitForSelector('#compare-result .badge');
    expect(await page.textContent('#compare-result')).toMatch(/count\(\*\)/);
  });

  it('updates the status view live when a file lands, without a reload', async () => {
    await page.click('a[data-view="status"]');
    const before = await page.textContent('[data-version="events"]');
    const marker = await page.evaluate(() => ((window as unknown as { marker: number }).marker = Math.random()));
    await writeFile(path.join(dataDir, 'events', '2024-03-03.jsonl'), ['{"ts": "2024-03-03T10:00:00Z", "customer_id": 3, "event": "login"}', '{"ts": "2024-03-03T10:01:00Z", "customer_id": 3, "event": "logout"}', '{"ts": "2024-03-03T10:02:00Z", "customer_id": 5, "event": "login"}'].join('\n') + '\n');
    await page.waitForFunction(() => document.querySelector('[data-rows="events"]')?.textContent === '11', undefined, { timeout: 20_000 });
    expect(await page.textContent('[data-version="events"]')).not.toBe(before);
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(marker);
    await shot('status-live');
  });

  it('submits an upsert, shows it go to visible, and shows the table with it in the grid', async () => {
    await page.click('a[data-view="writes"]');
    await page.fill('#write-table', 'customers');
    await page.fill('#write-key', 'id');
    await page.click('#write-load');
    await page.waitForFunction(() => document.querySelectorAll('#write-grid tbody tr').length === 7);
    await page.fill('#write-paste', '[{"id": 8, "name": "Barbara Liskov", "country": "US", "signup_date": "2024-03-20"}]');
    await page.click('#paste-upsert');
    await page.waitForFunction(() => document.querySelector('[data-write-status]')?.textContent === 'visible', undefined, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector('#write-grid tbody')?.textContent?.includes('Barbara Liskov'), undefined, { timeout: 10_000 });
    expect(await page.$$('#write-grid tbody tr')).toHaveLength(8);
    await shot('writes');
    await page.click('a[data-view="sql"]');
    await page.fill('#sql', 'SELECT name FROM customers WHERE id = 8');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelector('#result tbody')?.textContent?.includes('Barbara Liskov'));
  });

  it('lists a table\'s versions, shows what changed between two, and queries an older one', async () => {
    await page.click('a[data-view="explorer"]');
    await page.click('#explorer-tables li:has-text("customers")');
    // The upsert above made a second version of customers.
    await page.waitForFunction(() => document.querySelectorAll('#explorer-versions tbody tr').length === 2);
    const [newest, older] = await page.$$eval('#explorer-versions [data-version-row]', (tds) => tds.map((td) => Number(td.getAttribute('data-version-row'))));
    expect(await page.inputValue('#diff-from')).toBe(String(older));
    expect(await page.inputValue('#diff-to')).toBe(String(newest));
    await page.fill('#diff-key', 'id');
    await page.click('#diff-run');
    await page.waitForSelector('#explorer-diff tbody tr');
    const changes = await page.$$eval('#explorer-diff tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-change'), tr.textContent]));
    expect(changes).toEqual([['insert', expect.stringContaining('Barbara Liskov')]]);
    expect(await page.textContent('#diff-status')).toMatch(new RegExp(`^v${older} → v${newest}: 1 insert · `));
    await shot('versions-diff');

    // An update, paired by the key: the new value with the old one struck out beside it.
    const res = await fetch(`http://127.0.0.1:${port}/v1/tables/customers/upsert`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: ['id'], rows: [{ id: 2, name: 'Grace Brewster Hopper', country: 'US', signup_date: '2023-12-14' }] }) });
    expect(res.status).toBe(202);
    // The versions list follows live (no reload): a third version appears.
    await page.waitForFunction(() => document.querySelectorAll('#explorer-versions tbody tr').length >= 3, undefined, { timeout: 30_000 });
    const latest = await page.$eval('#explorer-versions [data-version-row]', (td) => td.getAttribute('data-version-row'));
    await page.selectOption('#diff-from', String(newest));
    await page.selectOption('#diff-to', latest ?? '');
    await page.click('#diff-run');
    await page.waitForSelector('#explorer-diff tr[data-change="update"]');
    expect(await page.textContent('#explorer-diff tr[data-change="update"] del')).toBe('Grace Hopper');
    expect(await page.textContent('#explorer-diff tr[data-change="update"]')).toContain('Grace Brewster Hopper');
    expect(await page.textContent('#explorer-title')).toBe(`customers — v${latest}, 8 rows, 2 files`);
    await shot('versions-diff-update');

    // The first version, queried from its row: the table before the upserts.
    await page.click(`#explorer-versions tr:has([data-version-row="${older}"]) button`);
    await page.waitForFunction(() => document.querySelectorAll('#result tbody tr').length === 7);
    expect(await page.textContent('#pins-state')).toBe(`pinned: customers v${older}`);
    expect(await page.textContent('#result-status')).toMatch(new RegExp(`read customers v${older} \\(pinned\\)`));
    await shot('sql-pinned');
    // A time before any retained version: the API's answer, naming the oldest retained one.
    await page.click('#pins-clear');
    await page.fill('#as-of', '2001-01-01T00:00:00');
    await page.click('#run');
    await page.waitForFunction(() => /no retained version at 2001-01-01/.test(document.getElementById('sql-error')?.textContent ?? ''));
    // Back to the current versions: the upserts' rows are there.
    await page.click('#pins-clear');
    expect(await page.textContent('#pins-state')).toBe('current versions');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelector('#result tbody')?.textContent?.includes('Grace Brewster Hopper'));
    expect(await page.$$('#result tbody tr')).toHaveLength(8);
  });

  it('shows the explorer, cache and exports views', async () => {
    await page.click('a[data-view="explorer"]');
    await page.click('#explorer-tables li:has-text("orders")');
    await page.waitForFunction(() => document.querySelectorAll('#explorer-preview tbody tr').length === 12);
    expect(await page.textContent('#explorer-schema')).toContain('orders/2024-03.ndjson');
    await shot('explorer');
    await page.click('a[data-view="cache"]');
    await page.waitForSelector('#cache-tables tbody tr');
    expect(await page.textContent('#cache-tables thead')).toContain('parts');
    const cells = await page.$$eval('#cache-tables tbody td', (tds) => tds.map((td) => td.textContent));
    expect(cells.some((c) => c === 'build' || c === 'merge')).toBe(true);
    await shot('cache');
    await page.click('a[data-view="exports"]');
    await page.waitForSelector('#exports a[href*="orders.parquet"]', { timeout: 20_000 });
    const href = await page.getAttribute('#exports a[href*="orders.parquet"]', 'href');
    const res = await fetch(`http://127.0.0.1:${port}${href}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).subarray(0, 4).toString()).toBe('PAR1');
    await shot('exports');
  });
});
