// `npm test`: install, build, then run every test (unit, integration, multi-process end-to-end)
// against a real Redis (FLASHDUCK_TEST_REDIS_URL, default redis://127.0.0.1:6379).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, bootstrap } from './bootstrap.mjs';

bootstrap();
const vitest = path.join(ROOT, 'node_modules/vitest/vitest.mjs');
const r = spawnSync(process.execPath, [vitest, 'run', ...process.argv.slice(2)], { cwd: ROOT, stdio: 'inherit', env: { ...process.env, TZ: 'UTC' } });
process.exit(r.status ?? 1);
