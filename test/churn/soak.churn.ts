// `pnpm churn [options]` runs this file (scripts/churn.mjs passes the options in CHURN_ARGS). Its name does not
// match the `*.test.ts` patterns on purpose: a soak run is not part of `npm test` (churn.int.test.ts is).
import { expect, it } from 'vitest';
import { parseChurnArgs, type ChurnOptions } from './options.js';
import { runChurn } from './run-churn.js';

let options: ChurnOptions | undefined;
let usage: string | undefined;
try {
  options = parseChurnArgs(JSON.parse(process.env.CHURN_ARGS ?? '[]') as string[]);
} catch (err) {
  usage = (err as Error).message;
}

it(options ? `churn --seed ${options.seed}` : 'churn (bad arguments)', async () => {
  if (!options) throw new Error(usage);
  const result = await runChurn(options);
  expect(result.violations, `${result.violations} violation(s); replay: see above`).toBe(0);
}, ((options?.seconds ?? 0) + (options?.convergeMs ?? 0) / 1000 + 600) * 1000);
