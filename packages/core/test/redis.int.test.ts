import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeartbeatPublisher, Lease, PartMissingError, createKeys, createLogger, deletePart, fetchPart, readHeartbeats, storePart } from '../src/index.js';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../src/testing/index.js';

describe('Redis building blocks', () => {
  const prefix = uniquePrefix('core');
  const keys = createKeys(prefix);
  const log = createLogger('silent');
  let redis: Redis;
  let dir: string;

  beforeAll(async () => {
    redis = new Redis(TEST_REDIS_URL);
    dir = await mkdtemp(path.join(os.tmpdir(), 'flashduck-core-'));
  });
  afterAll(async () => {
    redis.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
    await rm(dir, { recursive: true, force: true });
  });

  it('grants a lease to one holder at a time, with a growing fencing epoch', async () => {
    const lk = { owner: keys.leaseOwner('t1'), epoch: keys.leaseEpoch('t1') };
    const a = new Lease(redis, lk, 300, 'a');
    const b = new Lease(redis, lk, 300, 'b');
    expect(await a.tryAcquire()).toBe(true);
    const first = a.epoch;
    expect(await b.tryAcquire()).toBe(false);
    expect(await a.tryAcquire()).toBe(true); // renewal keeps the epoch
    expect(a.epoch).toBe(first);
    await new Promise((r) => setTimeout(r, 400)); // a dies without releasing
    expect(await b.tryAcquire()).toBe(true);
    expect(b.epoch).toBe(first + 1);
    expect(await a.tryAcquire()).toBe(false);
    await a.release(); // releasing someone else's lease does nothing
    expect(await b.holder()).toMatch(/^b:/);
    await b.release();
    expect(await b.holder()).toBeNull();
  });

  it('keeps a lease renewed past its TTL, and once it is gone never takes it again', async () => {
    const lk = { owner: keys.leaseOwner('t2'), epoch: keys.leaseEpoch('t2') };
    const a = new Lease(redis, lk, 300, 'a');
    const b = new Lease(redis, lk, 300, 'b');
    expect(await a.tryAcquire()).toBe(true);
    let lostCalls = 0;
    const renewal = a.keepRenewed(() => (lostCalls += 1));
    try {
      await new Promise((r) => setTimeout(r, 1_000)); // three TTLs
      expect(await b.tryAcquire()).toBe(false);
      expect(await a.holder()).toMatch(/^a:/);
      expect(renewal.lost).toBe(false);
      // Redis loses its data: the next renewal finds the lease gone and leaves it free.
      await redis.del(lk.owner, lk.epoch);
      await new Promise((r) => setTimeout(r, 600));
      expect(renewal.lost).toBe(true);
      expect(lostCalls).toBe(1);
      expect(await a.holder()).toBeNull();
      expect(await b.tryAcquire()).toBe(true);
    } finally {
      renewal.stop();
      await b.release();
    }
  });

  it('stores a part as chunks under its content address and reads it back byte for byte', async () => {
    const src = path.join(dir, 'src.bin');
    const bytes = Buffer.alloc(10_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) % 251;
    await writeFile(src, bytes);
    const stored = await storePart(redis, keys, 'orders', src, 3_000);
    expect(stored).toMatchObject({ chunks: 4, bytes: 10_000, written: 10_000 });
    // The same bytes again are the same part, not written twice; another table's copy is its own part.
    expect(await storePart(redis, keys, 'orders', src, 3_000)).toEqual({ ...stored, written: 0 });
    expect((await storePart(redis, keys, 'other', src, 3_000)).id).not.toBe(stored.id);
    const out = path.join(dir, 'out.bin');
    expect(await fetchPart(redis, keys, stored, out)).toBe(10_000);
    expect(Buffer.compare(await readFile(out), bytes)).toBe(0);
    await deletePart(redis, keys, stored);
    await expect(fetchPart(redis, keys, stored, out)).rejects.toBeInstanceOf(PartMissingError);
  });

  it('stores a copy of its own for each chunk size, never writing over another size\'s chunks', async () => {
    const src = path.join(dir, 'layout.bin');
    const bytes = Buffer.alloc(10_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 253;
    await writeFile(src, bytes);
    const out = path.join(dir, 'layout-out.bin');
    // Cachers set to 3,000 and 7,000 bytes store the same part: two copies, each whole in its own chunks.
    const small = await storePart(redis, keys, 'layout', src, 3_000);
    const large = await storePart(redis, keys, 'layout', src, 7_000);
    expect(small).toMatchObject({ chunks: 4, written: 10_000 });
    expect(large).toMatchObject({ chunks: 2, written: 10_000 });
    expect(large.id).not.toBe(small.id);
    for (const stored of [small, large]) {
      await fetchPart(redis, keys, stored, out);
      expect(Buffer.compare(await readFile(out), bytes)).toBe(0);
    }
  });

  it('stores an empty file as one empty chunk', async () => {
    const src = path.join(dir, 'empty.bin');
    await writeFile(src, '');
    expect(await storePart(redis, keys, 'orders', src, 3_000)).toMatchObject({ chunks: 1, bytes: 0 });
  });

  it('shows live heartbeats and forgets an instance whose TTL passed', async () => {
    const hb = new HeartbeatPublisher(redis, keys, log, { component: 'cacher', instance: 'c1', intervalMs: 100, info: () => ({ building: 0 }) });
    await hb.beat();
    const alive = await readHeartbeats(redis, keys);
    expect(alive.map((h) => [h.component, h.instance, h.info.building])).toEqual([['cacher', 'c1', 0]]);
    const later = Date.now() + 1_000; // past the 300 ms TTL (3 intervals)
    expect(await readHeartbeats(redis, keys, later)).toEqual([]);
    expect(await redis.hlen(keys.heartbeats)).toBe(0);
  });
});
