import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownDirIn } from './processes.js';

describe('a folder of its own per instance', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'flashduck-owndir-test-'));
  });
  afterAll(async () => rm(root, { recursive: true, force: true }));

  it('gives two instances with the same setting two folders, reclaims those of dead processes and leaves the rest', async () => {
    const dead = path.join(root, '999999-a1b2c3'); // above any pid this machine hands out
    const running = path.join(root, `${process.ppid}-a1b2c3`);
    const other = path.join(root, '2024-sales'); // not a name it makes
    for (const d of [dead, running, other]) await mkdir(d);
    const a = await ownDirIn(root);
    const b = await ownDirIn(root);
    expect(a).not.toBe(b);
    expect(path.dirname(a)).toBe(root);
    expect(existsSync(dead)).toBe(false);
    expect((await readdir(root)).sort()).toEqual([path.basename(a), path.basename(b), path.basename(running), path.basename(other)].sort());
  });
});
