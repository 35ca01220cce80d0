import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processAlive } from '@flashduck/core';

/** Where a running `flashduck standalone` can be reached: what the other CLI commands use by default. */
export interface StandaloneState {
  readonly pid: number;
  readonly redisUrl: string;
  readonly prefix: string;
  readonly apiUrl: string;
}

/** `FLASHDUCK_RUNTIME_DIR`, or a per-user folder in the temp dir. */
function stateFile(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : os.userInfo().username;
  const dir = process.env.FLASHDUCK_RUNTIME_DIR ?? path.join(os.tmpdir(), `flashduck-${uid}`);
  return path.join(dir, 'standalone.json');
}

/** Records this standalone (replacing an earlier one's record) and removes the record when the process exits. */
export function recordStandalone(state: Omit<StandaloneState, 'pid'>): void {
  const file = stateFile();
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ pid: process.pid, ...state }), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    return; // a read-only temp dir: the other commands fall back to their defaults
  }
  process.once('exit', () => {
    if (runningStandalone()?.pid === process.pid) rmSync(file, { force: true });
  });
}

/** The standalone recorded here, if its process is still alive. */
export function runningStandalone(): StandaloneState | null {
  let state: StandaloneState;
  try {
    state = JSON.parse(readFileSync(stateFile(), 'utf8')) as StandaloneState;
  } catch {
    return null;
  }
  if (!Number.isInteger(state.pid) || typeof state.redisUrl !== 'string') return null;
  return processAlive(state.pid) ? state : null;
}

/**
 * Points the commands that read Redis or call query-api at the running standalone, for every setting the user
 * did not give (a flag or variable still wins): so `flashduck tables` finds the private Redis `npm start` started
 * on a random port, and `flashduck query` the port it serves.
 */
export function adoptRunningStandalone(env: NodeJS.ProcessEnv = process.env): StandaloneState | null {
  const state = runningStandalone();
  if (!state || state.pid === process.pid) return null;
  env.FLASHDUCK_REDIS_URL ??= state.redisUrl;
  env.FLASHDUCK_PREFIX ??= state.prefix;
  env.FLASHDUCK_API_URL ??= state.apiUrl;
  return state;
}
