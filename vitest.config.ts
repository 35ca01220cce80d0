import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['apps/*/src/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start real processes and share two cores: run files one at a time.
    fileParallelism: false,
    // The CLI finds a running standalone through a file in FLASHDUCK_RUNTIME_DIR: the tests' own, not the user's.
    env: { TZ: 'UTC', FLASHDUCK_RUNTIME_DIR: path.join(os.tmpdir(), `flashduck-test-runtime-${process.pid}`) },
  },
});
