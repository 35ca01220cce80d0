// Makes a fresh clone runnable with nothing but Node.js and npm: finds (or fetches) pnpm,
// installs dependencies when they are missing or stale, and builds (turbo skips what is current).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PNPM_VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).packageManager.split('@')[1];

function major(v) {
  return Number(String(v).split('.')[0]);
}

if (major(process.versions.node) < 20) {
  console.error(`FlashDuck needs Node.js 20 or newer (this is ${process.version}).`);
  process.exit(1);
}

/** The command that runs pnpm: a global pnpm of the pinned major, or npx fetching the pinned version. */
export function pnpmCommand() {
  const probe = spawnSync('pnpm', ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' });
  if (probe.status === 0 && major(probe.stdout.trim()) === major(PNPM_VERSION)) return ['pnpm'];
  return ['npx', '--yes', `pnpm@${PNPM_VERSION}`];
}

function run(cmd, args, quiet) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) {
    console.error(`\n"${[cmd, ...args].join(' ')}" failed (exit ${r.status ?? r.signal}).`);
    process.exit(r.status ?? 1);
  }
}

/** Installs and builds as needed. */
export function bootstrap({ quiet = false } = {}) {
  const [pnpm, ...pre] = pnpmCommand();
  const marker = path.join(ROOT, 'node_modules', '.modules.yaml');
  const lock = path.join(ROOT, 'pnpm-lock.yaml');
  if (!existsSync(marker) || statSync(lock).mtimeMs > statSync(marker).mtimeMs) {
    if (!quiet) console.error('Installing dependencies…');
    run(pnpm, [...pre, 'install', '--frozen-lockfile'], quiet);
  }
  if (!quiet) console.error('Building…');
  run(pnpm, [...pre, 'exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], quiet);
}

export function gitRevision() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}
