/** Settings of one churn run. Everything that decides the operations is here, so the replay command is exact. */
export interface ChurnOptions {
  /** Seeds the file operations (and the writes). */
  readonly seed: number;
  /** File operations to run (fewer if `seconds` runs out first). */
  readonly ops: number;
  /** Time budget of the churn phase; operations are paced to fill it. */
  readonly seconds: number;
  /** query-api processes, each queried continuously. */
  readonly replicas: number;
  /** Also send upserts/deletes through the API (table `gamma`) and run a write-applier. */
  readonly writes: boolean;
  /** SIGKILL the cacher once and one query-api once mid-run, and restart them. */
  readonly kill: boolean;
  /**
   * Run on a private redis-server (no persistence) and SIGKILL it once mid-run; it is started again empty on
   * the same port 1–2 s later while the churn and the queries go on.
   */
  readonly redisLoss: boolean;
  /** Run a CPU-busy process beside the stack (contention). */
  readonly busy: boolean;
  /** The lag bound: how long a file's state may take to show, and how long an old state may still show. */
  readonly lagMs: number;
  /** How long every replica may take to equal the folder once the churn stops. */
  readonly convergeMs: number;
  /**
   * Root of the FlashDuck checkout whose `apps/<app>/dist/main.js` is started (default: this repo). Lets a
   * copy with a deliberately injected bug be checked without touching the working tree.
   */
  readonly appsRoot?: string | undefined;
  /** Print every operation and violation as it happens. */
  readonly verbose: boolean;
}

export const DEFAULTS: Omit<ChurnOptions, 'seed'> = {
  ops: 200,
  seconds: 60,
  replicas: 2,
  writes: false,
  kill: false,
  redisLoss: false,
  busy: false,
  lagMs: 8_000,
  convergeMs: 15_000,
  verbose: false,
};

const USAGE = `usage: pnpm churn [--seed N] [--ops N] [--seconds N] [--replicas N] [--writes] [--kill] [--redis-loss]
                  [--busy] [--lag-ms N] [--converge-ms N] [--apps-root DIR] [--verbose]
  --seed N         seeds the operations (default: random; printed, with the command that replays it)
  --ops N          file operations (default ${DEFAULTS.ops}; with only --seconds: 3 per second)
  --seconds N      time budget of the churn (default ${DEFAULTS.seconds}; with only --ops: 0.3 s per operation)
  --replicas N     query-api processes (default ${DEFAULTS.replicas})
  --writes         mix in upserts/deletes through the API (table gamma, with a write-applier)
  --kill           SIGKILL the cacher and one query-api once mid-run, and restart them
  --redis-loss     run on a private redis-server (no persistence) instead of the shared one; SIGKILL it once
                   mid-run and start it again EMPTY on the same port 1-2 s later, churn and queries going on
                   (replicas keep answering; versions restart at 1; queued unapplied writes may be lost)
  --busy           run a CPU-busy process beside the stack
  --lag-ms N       the lag bound (default ${DEFAULTS.lagMs})
  --converge-ms N  how long replicas may take to equal the folder after the churn (default ${DEFAULTS.convergeMs})
  --apps-root DIR  start apps/<app>/dist/main.js from another checkout (e.g. a copy with an injected bug)
  --verbose        print every operation as it runs, and write the log file even when the run passes`;

/** Parses command-line style arguments (`--seed 5 --writes`). Throws with the usage on a bad argument. */
export function parseChurnArgs(argv: readonly string[]): ChurnOptions {
  const o: Record<string, unknown> = {};
  const num = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min} (got ${v ?? 'nothing'})\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--seed': o.seed = num(flag, value(), 0); break;
      case '--ops': o.ops = num(flag, value(), 1); break;
      case '--seconds': o.seconds = num(flag, value(), 1); break;
      case '--replicas': o.replicas = num(flag, value(), 1); break;
      case '--lag-ms': o.lagMs = num(flag, value(), 100); break;
      case '--converge-ms': o.convergeMs = num(flag, value(), 1000); break;
      case '--apps-root': o.appsRoot = value(); break;
      case '--writes': o.writes = true; break;
      case '--kill': o.kill = true; break;
      case '--redis-loss': o.redisLoss = true; break;
      case '--busy': o.busy = true; break;
      case '--verbose': o.verbose = true; break;
      case '--help': case '-h': throw new Error(USAGE);
      default: throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  const hasOps = o.ops !== undefined;
  const hasSeconds = o.seconds !== undefined;
  const ops = hasOps ? (o.ops as number) : hasSeconds ? Math.max(1, Math.round((o.seconds as number) * 3)) : DEFAULTS.ops;
  const seconds = hasSeconds ? (o.seconds as number) : hasOps ? Math.max(1, Math.ceil(ops * 0.3)) : DEFAULTS.seconds;
  return {
    ...DEFAULTS,
    ...o,
    ops,
    seconds,
    seed: (o.seed as number | undefined) ?? Math.floor(Math.random() * 2 ** 31),
  };
}

/** The command that runs exactly these operations again. */
export function replayCommand(o: ChurnOptions): string {
  const parts = ['pnpm churn', `--seed ${o.seed}`, `--ops ${o.ops}`, `--seconds ${o.seconds}`, `--replicas ${o.replicas}`];
  if (o.writes) parts.push('--writes');
  if (o.kill) parts.push('--kill');
  if (o.redisLoss) parts.push('--redis-loss');
  if (o.busy) parts.push('--busy');
  parts.push(`--lag-ms ${o.lagMs}`);
  if (o.convergeMs !== DEFAULTS.convergeMs) parts.push(`--converge-ms ${o.convergeMs}`);
  if (o.appsRoot) parts.push(`--apps-root ${o.appsRoot}`);
  return parts.join(' ');
}
