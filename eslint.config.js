// @ts-check
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores(['**/dist/**', '**/node_modules/**', '**/.turbo/**', '**/coverage/**', '**/test-results/**']),

  // Plain JavaScript (scripts/*.mjs, bench/*.mjs, this file, the console's public/app.js) is linted too, but
  // with ESLint's JS rules only: no tsconfig covers it (no allowJs/checkJs), so there is no type information
  // for the type-checked rules. The JS rules still catch undefined names, unused variables and unreachable code.
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },
  {
    rules: {
      // An empty catch means "best effort" here (a bench poll that retries, the console's optional error body).
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['apps/query-api/public/**/*.js'],
    languageOptions: { globals: globals.browser },
  },

  // TypeScript: every .ts file belongs to a tsconfig — apps/*/tsconfig.json and packages/*/tsconfig.json
  // hold src/ minus the tests, the root tsconfig.json holds the tests (src/**/*.test.ts, test/, apps/*/test,
  // packages/*/test) and vitest.config.ts. The project service finds the tsconfig that owns each file.
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A dropped promise in a worker loop is a silent outage (STYLE.md): these four are errors everywhere.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // A switch with a `default` is exhaustive on purpose (arrow.ts maps the few DuckDB/Arrow types it knows
      // and sends the rest to text); a switch without one must name every member of the union.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // `_next` keeps Express's four-argument error handler signature.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Passing on a reason caught as `unknown` is fine (reader-pool forwards a failed start); a string is not.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Off: every finding was String(cell) on a DuckDB row value whose SQL guarantees a scalar (DESCRIBE,
      // table names) or String(v) after objects already went to JSON.stringify (a typeof check does not
      // narrow `{}`). The casts needed to silence it would hide more than they show.
      '@typescript-eslint/no-base-to-string': 'off',
      // Off: `async () => true` is how a callback here says it returns a promise (BullMQ processors, the
      // exporter's mayReplace default); an async function without await is harmless, a dropped promise is not.
      '@typescript-eslint/require-await': 'off',
    },
  },

  // Tests read JSON bodies, YAML manifests and DuckDB rows as `any`: checking every property access of a
  // response the assertion is about to compare adds noise, not safety. The promise rules stay on.
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'apps/*/test/**/*.ts', 'packages/*/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
