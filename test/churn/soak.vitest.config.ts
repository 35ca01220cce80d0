import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Used only by `pnpm churn` (scripts/churn.mjs): runs the soak entry, which `npm test` does not include.
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/churn/soak.churn.ts'],
    // The run bounds itself (its --seconds and --converge-ms); the test timeout is set per run.
    hookTimeout: 120_000,
    // The report is printed as the run goes, straight to the terminal.
    disableConsoleIntercept: true,
    env: { TZ: 'UTC' },
  },
});
