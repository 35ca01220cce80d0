import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

/** Whether process `pid` runs (one this process may not signal runs too). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Names of the folders `ownDirIn` and DuckDB's spill folders make: `<pid>-<6 hex>` or `<pid>-<n>-<6 hex>`. */
const PROCESS_DIR = /^(\d+)-(?:\d+-)?[0-9a-f]{6}$/;

/** A name for a folder of this process's own: `<pid>-<n>-<6 hex>` (`n` omitted when not given). */
export function processDirName(n?: number): string {
  return `${process.pid}-${n === undefined ? '' : `${n}-`}${randomBytes(3).toString('hex')}`;
}

/**
 * Removes the folders in `root` this process's kind makes (`processDirName`) whose process no longer runs:
 * scratch space of processes that died without cleaning up. A folder of a running process (or of this one) is
 * never touched, nor anything else in `root`.
 */
export function removeDirsOfDeadProcesses(root: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(root);
  } catch {
    return; // not there yet
  }
  for (const e of entries) {
    const pid = Number(PROCESS_DIR.exec(e)?.[1]);
    if (pid && pid !== process.pid && !processAlive(pid)) rmSync(path.join(root, e), { recursive: true, force: true });
  }
}

/**
 * A new folder of this process's own under `root`, made after removing those of processes that no longer run:
 * two instances on one host with the same setting never share scratch space or caches (one's cleanup would delete
 * the other's files mid-use), and a crashed instance's folder is reclaimed by the next start.
 */
export async function ownDirIn(root: string): Promise<string> {
  removeDirsOfDeadProcesses(root);
  const dir = path.join(root, processDirName());
  await mkdir(dir, { recursive: true });
  return dir;
}
