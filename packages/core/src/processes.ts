import { readdirSync, rmSync } from 'node:fs';
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

/**
 * Removes the folders in `root` named `<pid>-…` whose process no longer runs: scratch space of processes that
 * died without cleaning up. A folder of a running process (or of this one) is never touched.
 */
export function removeDirsOfDeadProcesses(root: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(root);
  } catch {
    return; // not there yet
  }
  for (const e of entries) {
    const pid = Number(/^(\d+)-/.exec(e)?.[1]);
    if (pid && pid !== process.pid && !processAlive(pid)) rmSync(path.join(root, e), { recursive: true, force: true });
  }
}
