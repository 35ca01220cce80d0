import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { redisAnswers } from '@flashduck/cli';
import { AppProcess, ROOT, flashduckEnv, freePort, waitFor } from '../helpers.js';

export type ChurnComponent = 'monitor' | 'cacher' | 'query-api' | 'write-applier';

/** Build lease of the cacher: after a SIGKILL, a new cacher can rebuild a table once this has run out. */
export const CACHER_LEASE_MS = 1_500;

/**
 * A redis-server of the run's own (`--redis-loss`), on a free port, without persistence and without eviction
 * (as test/faults/redis-forgets.int.test.ts runs it): killed and started again it comes back empty, as after a
 * failover to an empty replica or a lost volume.
 */
export class PrivateRedis {
  private proc: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.up();
    return redis;
  }

  /** Starts redis-server (empty) on the port. `startedAt`: when it was spawned; `answeringAt`: when it answered. */
  async up(): Promise<{ startedAt: number; answeringAt: number }> {
    const startedAt = Date.now();
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'],
      { stdio: 'ignore' },
    );
    await waitFor(`redis-server on port ${this.port}`, () => redisAnswers(this.url, 200), 15_000, 20);
    return { startedAt, answeringAt: Date.now() };
  }

  /** SIGKILLs redis-server (all its data is gone); resolves with the time of the signal once it exited. */
  async kill(): Promise<number> {
    const p = this.proc;
    const at = Date.now();
    if (!p || p.exitCode !== null || p.signalCode !== null) return at;
    const died = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await died;
    return at;
  }
}

/**
 * The processes of one churn run: a monitor, a cacher, N query-api replicas (each on its own port) and
 * optionally a write-applier, started from `apps/<app>/dist/main.js` of `appsRoot`, with fast timings
 * (as the fault suite uses) so a change shows within a second or two.
 */
export class ChurnStack {
  readonly procs: { id: string; component: ChurnComponent; replica: number; proc: AppProcess }[] = [];
  /** Replicas not to query right now (killed, restarting). */
  readonly down: boolean[];
  /** Bumped at every kill of a replica: an answer that started in an earlier epoch is not judged. */
  readonly epoch: number[];
  /** When each replica last came (back) up: what it shows first after a restart says nothing about lag. */
  readonly upSince: number[];
  private started = 0;
  private busy: ChildProcess | null = null;

  private constructor(
    readonly env: Record<string, string>,
    readonly ports: number[],
    readonly work: string,
    private readonly appsRoot: string,
  ) {
    this.down = ports.map(() => false);
    this.epoch = ports.map(() => 0);
    this.upSince = ports.map(() => 0);
  }

  static async start(options: {
    prefix: string;
    dataDir: string;
    work: string;
    replicas: number;
    writes: boolean;
    busy: boolean;
    appsRoot?: string | undefined;
    /** Redis to use (default: the shared test Redis). */
    redisUrl?: string | undefined;
  }): Promise<ChurnStack> {
    const ports: number[] = [];
    for (let i = 0; i < options.replicas; i++) ports.push(await freePort());
    const env: Record<string, string> = {
      ...flashduckEnv(options.prefix, options.dataDir, options.work, options.redisUrl),
      FLASHDUCK_LOG_LEVEL: 'info',
      FLASHDUCK_HEARTBEAT_MS: '1000',
      FLASHDUCK_SHUTDOWN_MS: '5000',
      MONITOR_POLL_MS: '150',
      MONITOR_SETTLE_MS: '300',
      MONITOR_LEASE_MS: '3000',
      CACHER_LEASE_MS: String(CACHER_LEASE_MS),
      CACHER_RECONCILE_MS: '500',
      CACHER_READ_PARALLELISM: '2',
      // Merges all the time (a table of more than 3 parts is merged) and parts collected 3 s after they leave
      // the current version: answers are checked across merges and collection, not only across builds.
      CACHER_MERGE_MAX_PARTS: '3',
      CACHER_RETAIN_MS: '3000',
      // Two versions retained: answers are also checked while versions are pruned and their parts collected.
      FLASHDUCK_RETAIN_VERSIONS: '2',
      // One DuckDB thread per process, as a pod with a one-core limit would run: the stack shares two cores.
      CACHER_THREADS: '1',
      QUERY_THREADS: '1',
      QUERY_API_REFRESH_MS: '300',
      WRITER_POLL_MS: '100',
      WRITER_LEASE_MS: '1500',
      WRITER_CLAIM_IDLE_MS: '1000',
    };
    const stack = new ChurnStack(env, ports, options.work, options.appsRoot ?? ROOT);
    if (options.busy) {
      // A CPU hog beside the stack: every component competes for the cores, as on a busy node. It checks every
      // 200 ms that the run still owns it and exits when that process is gone (a run stopped by a signal).
      const hog = `const owner = ${process.pid}; for (;;) { const t = Date.now(); while (Date.now() - t < 200); try { process.kill(owner, 0); } catch { process.exit(0); } }`;
      stack.busy = spawn(process.execPath, ['-e', hog], { stdio: 'ignore' });
    }
    stack.start('monitor');
    stack.start('cacher');
    for (let i = 0; i < ports.length; i++) stack.start('query-api', i);
    if (options.writes) stack.start('write-applier');
    return stack;
  }

  start(component: ChurnComponent, replica = 0): AppProcess {
    this.started += 1;
    const id = `churn-${component}-${this.started}`;
    const extra: Record<string, string> =
      component === 'query-api' ? { QUERY_API_PORT: String(this.ports[replica]), QUERY_API_CACHE_DIR: path.join(this.work, `cache-${replica}-${this.started}`) } : {};
    const child = spawn(process.execPath, [path.join(this.appsRoot, 'apps', component, 'dist', 'main.js')], {
      env: { ...process.env, ...this.env, FLASHDUCK_INSTANCE_ID: id, ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new AppProcess(component, child);
    this.procs.push({ id, component, replica: component === 'query-api' ? replica : -1, proc });
    return proc;
  }

  /** True once replica `i` answers /readyz with 200. */
  async ready(i: number): Promise<boolean> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.ports[i]}/readyz`, { signal: AbortSignal.timeout(2_000) });
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /**
   * SIGKILLs the cacher and starts a new one. Resolves when the new process runs; `recovered` resolves with
   * the time from which it can build again (its start plus the dead cacher's build lease).
   */
  async killCacher(): Promise<{ killedAt: number; recovered: Promise<number> }> {
    const victim = this.procs.filter((p) => p.component === 'cacher' && p.proc.alive).at(-1);
    const killedAt = Date.now();
    if (victim) await victim.proc.kill('SIGKILL');
    const next = this.start('cacher');
    const recovered = next
      .waitForLog(/cacher started/, 60_000)
      .then(() => Date.now() + CACHER_LEASE_MS)
      .catch(() => Date.now() + CACHER_LEASE_MS);
    return { killedAt, recovered };
  }

  /** SIGKILLs replica `i` and starts it again on its port; `back` resolves once it is ready (queries resume). */
  async killReplica(i: number): Promise<{ back: Promise<void> }> {
    this.down[i] = true;
    this.epoch[i]! += 1;
    const victim = this.procs.filter((p) => p.replica === i && p.proc.alive).at(-1);
    if (victim) await victim.proc.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    this.start('query-api', i);
    const back = waitFor(`replica ${i} ready after restart`, () => this.ready(i), 90_000, 100)
      .then(() => {
        this.upSince[i] = Date.now();
        this.down[i] = false;
      });
    return { back };
  }

  /** Every process's log, for a failure report. */
  logs(): string {
    return this.procs.map((p) => `===== ${p.id} (${p.proc.alive ? 'alive' : `exited ${p.proc.child.exitCode ?? p.proc.child.signalCode}`})\n${p.proc.logs.join('\n')}`).join('\n');
  }

  /** Stops everything: SIGTERM, then SIGKILL after 5 s. */
  async stop(): Promise<void> {
    this.busy?.kill('SIGKILL');
    await Promise.all(
      this.procs.map(async (p) => {
        if (!p.proc.alive) return;
        const timer = setTimeout(() => p.proc.child.kill('SIGKILL'), 5_000);
        await p.proc.kill('SIGTERM');
        clearTimeout(timer);
      }),
    );
  }
}
