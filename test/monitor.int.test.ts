import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { createKeys, createLogger } from '@flashduck/core';
import { loadMonitorConfig, startMonitor, type Monitor } from '@flashduck/monitor';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, deletePrefix, removeDir, rows, tempDir, uniquePrefix, waitFor, writeAtomic } from './helpers.js';
import { startStack, type Stack } from './stack.js';

describe('monitor leader lease', () => {
  let prefix: string;
  let dataDir: string;
  let redis: Redis;
  const monitors: Monitor[] = [];
  const log = createLogger('silent');

  beforeEach(async () => {
    prefix = uniquePrefix('lease');
    dataDir = await tempDir('lease');
    redis = new Redis(TEST_REDIS_URL);
  });
  afterEach(async () => {
    for (const m of monitors.splice(0)) await m.stop();
    redis.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
    await removeDir(dataDir);
  });

  const start = (id: string) =>
    startMonitor({
      config: loadMonitorConfig({
        FLASHDUCK_REDIS_URL: TEST_REDIS_URL,
        FLASHDUCK_PREFIX: prefix,
        FLASHDUCK_DATA_DIR: dataDir,
        FLASHDUCK_INSTANCE_ID: id,
        MONITOR_POLL_MS: '100',
        MONITOR_SETTLE_MS: '0',
        MONITOR_LEASE_MS: '1000',
      }),
      log,
    });
  const gen = async (table: string) => Number((await redis.hget(createKeys(prefix).tableState(table), 'gen')) ?? 0);
  const jobs = async () => (await redis.keys(`${prefix}:{q}:scan-diffs:[0-9a-z]*-[0-9]*`)).filter((k) => !k.includes(':logs')).length;

  it('lets exactly one of two monitors publish, and the other take over when it stops', async () => {
    monitors.push(await start('m1'), await start('m2'));
    await waitFor('one leader', () => monitors.filter((m) => m.isLeader).length === 1, 5_000);
    await writeAtomic(path.join(dataDir, 'a.csv'), 'x\n1\n');
    await waitFor('a published', async () => (await gen('a')) === 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(await gen('a')).toBe(1);
    expect(await jobs()).toBe(1);

    const leader = monitors.find((m) => m.isLeader)!;
    const standby = monitors.find((m) => !m.isLeader)!;
    await leader.stop();
    await waitFor('standby took over', () => standby.isLeader, 5_000);
    await writeAtomic(path.join(dataDir, 'a.csv'), 'x\n1\n2\n');
    await waitFor('change after failover published once', async () => (await gen('a')) === 2);
    await new Promise((r) => setTimeout(r, 500));
    expect(await gen('a')).toBe(2);
  });

  it('never records a table without a file renamed while the folder was being listed', async () => {
    await mkdir(path.join(dataDir, 't'));
    await writeFile(path.join(dataDir, 't', 'a.csv'), 'x\n1\n');
    const m = await start('m1');
    monitors.push(m);
    await waitFor('t published', async () => (await gen('t')) >= 1);
    const files = createKeys(prefix).tableFiles('t');
    let renaming = true;
    let renames = 0;
    const renamer = (async () => {
      // The table's only file changes its name without pause: every listing races a rename.
      for (let i = 0; renaming; i++) {
        await rename(path.join(dataDir, 't', i % 2 ? 'b.csv' : 'a.csv'), path.join(dataDir, 't', i % 2 ? 'a.csv' : 'b.csv'));
        renames += 1;
        if (i % 3 === 2) await new Promise((r) => setTimeout(r, 2)); // quiet moments, so some listings are stable
      }
    })();
    const recorded: number[] = [];
    const genBefore = await gen('t');
    try {
      for (let i = 0; i < 400; i++) {
        await m.scanNow();
        recorded.push(await redis.hlen(files)); // the manifest changes only while a scan publishes
      }
    } finally {
      renaming = false;
      await renamer;
    }
    console.log(`${recorded.length} scans during ${renames} renames; manifest sizes seen: ${[...new Set(recorded)].join(', ')}`);
    expect(recorded.filter((n) => n !== 1)).toEqual([]);
    expect(await gen('t')).toBeGreaterThan(genBefore + 10); // renames seen in stable moments are recorded
  });

  it('a new leader misses no change made while no monitor ran', async () => {
    monitors.push(await start('m1'));
    await writeAtomic(path.join(dataDir, 'a.csv'), 'x\n1\n');
    await waitFor('a published', async () => (await gen('a')) === 1);
    await monitors.pop()!.stop();
    await writeAtomic(path.join(dataDir, 'a.csv'), 'x\n1\n2\n');
    await writeAtomic(path.join(dataDir, 'b.csv'), 'y\n1\n');
    monitors.push(await start('m2'));
    await waitFor('both changes seen', async () => (await gen('a')) === 2 && (await gen('b')) === 1);
  });
});

describe('monitor file rules', () => {
  let stack: Stack;
  let outside: string;
  beforeEach(async () => {
    outside = await tempDir('outside');
  });
  afterEach(async () => {
    await stack?.stop();
    await removeDir(outside);
  });

  it('ignores hidden, _-prefixed and temp files, and refuses a symlink that leaves the data dir', async () => {
    stack = await startStack('rules', { MONITOR_SETTLE_MS: '0' });
    const port = stack.api.port;
    await mkdir(path.join(stack.dataDir, 'people'));
    await writeFile(path.join(stack.dataDir, 'people', 'a.csv'), 'id\n1\n');
    await writeFile(path.join(stack.dataDir, 'people', '.hidden.csv'), 'id\n100\n');
    await writeFile(path.join(stack.dataDir, 'people', '_staging.csv'), 'id\n101\n');
    await writeFile(path.join(stack.dataDir, 'people', 'b.csv.tmp'), 'id\n102\n');
    await writeFile(path.join(outside, 'secret.csv'), 'id\n999\n');
    await symlink(path.join(outside, 'secret.csv'), path.join(stack.dataDir, 'people', 'link.csv'));
    await writeFile(path.join(stack.dataDir, 'people', 'inside.csv'), 'id\n2\n');
    await symlink(path.join(stack.dataDir, 'people', 'inside.csv'), path.join(stack.dataDir, 'people', 'alias.csv'));
    // The files land one by one and a scan may see only some of them: wait for the one that has seen the last.
    const info = await waitFor('people with the refused link reported, after every file landed', async () => {
      const t = await (await fetch(`http://127.0.0.1:${port}/v1/tables/people`)).json();
      const files = ((t.files ?? []) as { path: string }[]).map((f) => f.path);
      return t.errors?.length && files.includes('people/alias.csv') ? t : undefined;
    });
    expect(info.errors).toEqual([{ file: 'people/link.csv', message: 'symlink points outside the data dir' }]);
    expect(await rows(port, 'SELECT id FROM people ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }, { id: 2 }]);
  });

  it('does not read a file until it has stopped changing for the settle window', async () => {
    stack = await startStack('settle', { MONITOR_SETTLE_MS: '1500', MONITOR_POLL_MS: '100' });
    const port = stack.api.port;
    const file = path.join(stack.dataDir, 'slow.csv');
    await writeFile(file, 'id\n1\n');
    await new Promise((r) => setTimeout(r, 600));
    expect((await fetch(`http://127.0.0.1:${port}/v1/tables/slow`)).status).toBe(404);
    await writeFile(file, 'id\n1\n2\n3\n');
    await new Promise((r) => setTimeout(r, 900));
    expect((await fetch(`http://127.0.0.1:${port}/v1/tables/slow`)).status).toBe(404);
    await waitFor('slow served after settling', async () => (await rows(port, 'SELECT count(*) AS n FROM slow'))[0]?.n === 3, 10_000);
  });

  it('reacts to file-system events at once with MONITOR_WATCH=true (polling kept as fallback)', async () => {
    stack = await startStack('watch', { MONITOR_WATCH: 'true', MONITOR_POLL_MS: '60000', MONITOR_SETTLE_MS: '0' });
    const port = stack.api.port;
    await writeAtomic(path.join(stack.dataDir, 'w.csv'), 'id\n7\n');
    await waitFor('watched file served', async () => (await rows(port, 'SELECT id FROM w'))[0]?.id === 7, 10_000);
    await rename(path.join(stack.dataDir, 'w.csv'), path.join(stack.dataDir, 'w2.csv'));
    await waitFor('rename seen without a poll', async () => (await fetch(`http://127.0.0.1:${port}/v1/tables/w2`)).status === 200, 10_000);
  });
});
