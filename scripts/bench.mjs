// `pnpm bench` / `npm run bench`: builds, then runs every benchmark; each prints FlashDuck beside its
// baseline measured in the same run.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, bootstrap } from './bootstrap.mjs';

bootstrap({ quiet: true });
const only = process.argv[2];
for (const bench of ['read-path', 'sync', 'writes', 'export', 'performance', 'scale', 'redis-memory', 'chunks', 'monitor-scan', 'changes', 'pg']) {
  if (only && only !== bench) continue;
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bench', `${bench}.mjs`)], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
