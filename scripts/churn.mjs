// `pnpm churn [--seed N] [--ops N] [--seconds N] [--replicas N] [--writes] [--kill] [--redis-loss] [--busy] …`:
// install and build as needed (like `npm test`), then run the seeded churn checker (test/churn/) once.
// Every option is described by `pnpm churn --help`. Exits non-zero when a rule was broken.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, bootstrap } from './bootstrap.mjs';

const args = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
// The seed is chosen here when none is given, so the command printed for a replay names it.
if (!args.some((a) => a === '--seed' || a.startsWith('--seed='))) args.push('--seed', String(Math.floor(Math.random() * 2 ** 31)));

bootstrap();
const vitest = path.join(ROOT, 'node_modules/vitest/vitest.mjs');
const r = spawnSync(process.execPath, [vitest, 'run', '--config', 'test/churn/soak.vitest.config.ts'], {
  cwd: ROOT,
  stdio: 'inherit',
  env: { ...process.env, TZ: 'UTC', CHURN_ARGS: JSON.stringify(args) },
});
process.exit(r.status ?? 1);
