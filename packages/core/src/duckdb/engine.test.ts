import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDuckDB, openDuckDB, type DuckDBHandle } from './engine.js';

/** A query that must spill under a 40 MB memory limit (a window over a shuffled 3M rows), with a checkable answer. */
const SPILLING = 'SELECT sum(x * rn)::VARCHAR AS s FROM (SELECT x, row_number() OVER (ORDER BY r) AS rn FROM (SELECT i AS x, hash(i) AS r FROM range(3000000) t(i)))';
const answer = async (db: DuckDBHandle) => String((await db.conn.runAndReadAll(SPILLING)).getRows()[0]![0]);

describe('DuckDB instances spilling under one temp folder', () => {
  let base: string;
  const open = () => openDuckDB({ memoryLimitMb: 40, threads: 1, tempDir: base });

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'flashduck-spill-test-'));
  });
  afterAll(async () => rm(base, { recursive: true, force: true }));

  it('answer right side by side, and one closing does not break another mid-query', async () => {
    const ref = await open();
    const expected = await answer(ref);
    closeDuckDB(ref);
    const [a, b, c] = [await open(), await open(), await open()];
    // Two spilling at once: each in its own folder, neither reads the other's spill files.
    expect(await Promise.all([answer(a), answer(b)])).toEqual([expected, expected]);
    // One closes (deleting its spill files) while another spills.
    const running = answer(a);
    await new Promise((r) => setTimeout(r, 300));
    closeDuckDB(b);
    closeDuckDB(c);
    expect(await running).toBe(expected);
    closeDuckDB(a);
    expect(await readdir(base)).toEqual([]);
  }, 60_000);

  it('removes spill folders left by a process that died, and never those of a running one', async () => {
    // The default base ($TMPDIR/flashduck-duckdb, shared by every process) is swept on the first open.
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = path.join(base, 'tmp');
    const other = path.join(base, 'tmp', 'flashduck-duckdb');
    const leftover = path.join(other, '999999-0-abcdef'); // above any pid this machine hands out
    const running = path.join(other, `${process.ppid}-0-abcdef`);
    for (const d of [leftover, running]) await mkdir(d, { recursive: true });
    try {
      closeDuckDB(await openDuckDB());
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(running)).toBe(true);
  });
});
