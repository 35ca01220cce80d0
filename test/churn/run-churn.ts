import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { createKeys } from '@flashduck/core';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL, compareStreamIds, deletePrefix, removeDir, tempDir, uniquePrefix } from '../helpers.js';
import { ChurnStack, PrivateRedis } from './churn-stack.js';
import { Model, VersionRules, WritesModel, type Finding, type Rows, type TableAnswer, type Window } from './model.js';
import { replayCommand, type ChurnOptions } from './options.js';
import { Prng } from './prng.js';
import { CHURN_TABLES, WRITES_BASE_KEYS, WRITES_TABLE, Workload, type KillTarget, type OpRecord, type WorkloadHooks } from './workload.js';

/**
 * `--redis-loss`: how long after Redis answers again the lag clock still stands still. Redis comes back empty:
 * the monitor records every table again, the cacher reads every file again (its stored fragments went with
 * Redis) and rebuilds every table, and the replicas fetch the rebuilt versions. Measured on a two-core machine
 * shared with other work (test/churn/README.md): every replica answered with a rebuilt version of every table,
 * whole, 0.8–1.6 s after Redis answered again (also with --busy); 3 s is about twice that, and hides no more.
 */
export const REDIS_RECOVERY_MS = 3_000;
/** `--redis-loss`: GET /v1/status must answer within this while Redis is down. */
const STATUS_DEADLINE_MS = 3_000;

/** A broken rule, with everything needed to understand and replay it. */
export interface Violation extends Finding {
  readonly replica: number;
  readonly form: string;
  readonly sql: string;
  /** The answer's window, ms since the run started. */
  readonly window: Window;
  readonly answer: string;
  readonly expected: string[];
  readonly recentOps: string[];
  /** How many answers broke this rule for this table and file. */
  count: number;
}

export interface ChurnResult {
  readonly options: ChurnOptions;
  readonly ops: number;
  readonly queries: number;
  readonly violations: number;
  readonly distinct: readonly Violation[];
  readonly durationMs: number;
  /** Versions merges published during the run. */
  readonly merges: number;
  readonly summary: string;
}

type Form = 'plain' | 'uncached' | 'query_table' | 'errors' | 'gamma';
type Answer = { status: number; body: any } | { error: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const AGG = 'SELECT fid, count(*) AS n, sum(seq)::BIGINT AS s FROM';

/**
 * The SQL of each query form. `plain` is the same text every time (the result cache answers it); `uncached`
 * asks the same question in a text never seen before (DuckDB answers it); `query_table` names the table only
 * through an expression, which no textual reading of the SQL can see.
 */
function sqlOf(form: Form, table: string, nonce: number): string {
  switch (form) {
    case 'plain':
      return `${AGG} ${table} GROUP BY fid`;
    case 'uncached':
      return `${AGG} ${table} WHERE seq <> -${nonce} GROUP BY fid`;
    case 'query_table':
      return `${AGG} query_table('${table.slice(0, 2)}' || '${table.slice(2)}') GROUP BY fid`;
    case 'gamma':
      return `SELECT id, v FROM ${WRITES_TABLE} ORDER BY id`;
    case 'errors':
      return `GET /v1/tables/${table}`;
  }
}

async function ask(port: number, form: Form, sql: string, table: string): Promise<Answer> {
  try {
    const res =
      form === 'errors'
        ? await fetch(`http://127.0.0.1:${port}/v1/tables/${table}`, { signal: AbortSignal.timeout(60_000) })
        : await fetch(`http://127.0.0.1:${port}/v1/query`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ sql, format: 'json' }),
            signal: AbortSignal.timeout(60_000),
          });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* kept as text */
    }
    return { status: res.status, body };
  } catch (err) {
    return { error: `${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}` };
  }
}

const canonical = (rows: ReadonlyMap<string, Rows>) =>
  [...rows.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([f, r]) => `${f}:${r.n}:${r.s}`)
    .join(' ');

function describeRows(rows: ReadonlyMap<string, Rows>, focus?: string): string {
  const list = [...rows.entries()].sort(([a], [b]) => Number(a.slice(1)) - Number(b.slice(1)));
  const shown = list.slice(0, 40).map(([f, r]) => `${f === focus ? '>>' : ''}${f} n=${r.n} s=${r.s}`);
  return `${list.length} fids: ${shown.join(', ')}${list.length > 40 ? ', …' : ''}`;
}

/**
 * Runs one seeded churn: starts the stack, runs the operations while every replica is queried without pause,
 * judges every answer against the model, waits for convergence, and cleans up (also on failure).
 */
export async function runChurn(options: ChurnOptions, out: (line: string) => void = (l) => console.log(l)): Promise<ChurnResult> {
  const started = Date.now();
  const replay = replayCommand(options);
  out(
    `churn: seed=${options.seed} ops=${options.ops} seconds=${options.seconds} replicas=${options.replicas}` +
      `${options.writes ? ' writes' : ''}${options.kill ? ' kill' : ''}${options.redisLoss ? ' redis-loss' : ''}${options.busy ? ' busy' : ''} lag=${options.lagMs}ms\n  replay: ${replay}`,
  );
  const prefix = uniquePrefix('churn');
  const dataDir = await tempDir('churn-data');
  const work = await tempDir('churn-work');
  const duck = await DuckDBInstance.create(':memory:');
  const conn = await duck.connect();
  let stack: ChurnStack | undefined;
  let redis: PrivateRedis | undefined;
  const model = new Model(options.lagMs);
  const writes = new WritesModel(new Map(Array.from({ length: WRITES_BASE_KEYS }, (_, i) => [i + 1, `b${i + 1}`])));
  let writesUncertain = false;
  const distinct = new Map<string, Violation>();
  let violations = 0;
  const stats = { queries: 0, skipped: 0, byForm: {} as Record<string, number>, maxStaleMs: 0, maxDelayMs: 0, convergeMs: -1 };
  const firstSeen = new Set<string>();
  let nonces = 0;
  const versions = new VersionRules();
  /** `--redis-loss`: what happened when (ms since the epoch), and what it measured. */
  const loss: {
    killedAt: number;
    restartedAt: number;
    backAt: number;
    lastPre: Map<string, number>;
    lostWrites: number[];
    /** Writes refused (503) while Redis was down. */
    refused: number;
    status: string[];
    /** Tables that had no readable file at some time since the kill (may then leave a replica). */
    emptied: Set<string>;
    /** Per replica|table: end of the first rebuilt answer showing every file unchanged since before the kill. */
    wholeAt: Map<string, number>;
  } = { killedAt: Infinity, restartedAt: Infinity, backAt: Infinity, lastPre: new Map(), lostWrites: [], refused: 0, status: [], emptied: new Set(), wholeAt: new Map() };
  /** Stream id of each write the API queued, by its number in the writes model. */
  const writeIds = new Map<number, string>();
  const killReplica = options.replicas > 1 ? 1 + (options.seed % (options.replicas - 1)) : 0;
  const pending: Promise<void>[] = [];
  /** `--redis-loss`: the restart of redis-server (awaited before the final kill, so none outlives the run). */
  let redisBack: Promise<void> | undefined;
  let t0 = Date.now();
  let workload: Workload | undefined;

  const rel = (t: number) => t - t0;
  const fmtOp = (o: OpRecord) => `#${o.index} [${rel(o.begin)}..${rel(o.end)}] ${o.kind} ${o.detail}`;

  /** Violations grouped by rule and query form (one cause usually breaks one rule through one form). */
  const groups = new Map<string, { first: Violation; count: number; files: Set<string> }>();
  const violate = (f: Finding, ctx: { replica: number; form: Form; sql: string; win: Window; answer: string }) => {
    violations += 1;
    const key = `${f.rule}|${f.table ?? ''}|${f.fid ?? ''}`;
    const gkey = `${f.rule}|${ctx.form}`;
    const seen = distinct.get(key);
    if (seen) seen.count += 1;
    const group = groups.get(gkey);
    if (group) {
      group.count += 1;
      if (f.fid) group.files.add(`${f.table}/${f.fid}`);
    }
    if (seen && group) return;
    const v: Violation = {
      ...f,
      replica: ctx.replica,
      form: ctx.form,
      sql: ctx.sql,
      window: { start: rel(ctx.win.start), end: rel(ctx.win.end) },
      answer: ctx.answer,
      expected: f.fid ? model.describe(f.fid, t0) : [],
      recentOps: (workload?.log ?? []).filter((o) => o.begin <= ctx.win.end).slice(-20).map(fmtOp),
      count: 1,
    };
    if (!seen) distinct.set(key, v);
    if (!group) {
      groups.set(gkey, { first: v, count: 1, files: new Set(f.fid ? [`${f.table}/${f.fid}`] : []) });
      out(`VIOLATION ${f.rule} (replica ${ctx.replica}, ${ctx.form}, answer [${v.window.start}..${v.window.end}] ms): ${f.detail}`);
    } else if (options.verbose) out(`  violation ${f.rule} (replica ${ctx.replica}, ${ctx.form}): ${f.detail}`);
  };

  /** Delay and staleness figures (diagnostics for choosing the lag bound). */
  const measure = (replica: number, table: string, rows: ReadonlyMap<string, Rows>, win: Window) => {
    for (const [fid, got] of rows) {
      const states = model.statesOf(fid);
      let idx = -1;
      for (let i = states.length - 1; i >= 0; i--) {
        const s = states[i]!;
        if (s.table === table && s.n === got.n && s.s === got.s && !s.bad && s.begin <= win.end) {
          idx = i;
          break;
        }
      }
      if (idx < 0) continue;
      const matched = states[idx]!;
      if (matched.end !== Infinity) stats.maxStaleMs = Math.max(stats.maxStaleMs, model.elapsed(matched.end, win.start));
      let first = idx;
      while (first > 0 && states[first - 1]!.table === table && states[first - 1]!.n === got.n && states[first - 1]!.s === got.s) first--;
      const key = `${replica}|${fid}|${first}`;
      // Files from before the churn were first judged once the stack was up: no delay to measure.
      if (!firstSeen.has(key) && states[first]!.begin >= t0 && states[first]!.settled >= stack!.upSince[replica]!) {
        firstSeen.add(key);
        stats.maxDelayMs = Math.max(stats.maxDelayMs, model.elapsed(states[first]!.settled, win.end));
      }
    }
  };

  /** version-went-back and same-version-different-rows (per era when Redis lost its data: see VersionRules). */
  const checkVersion = (replica: number, table: string, version: unknown, canon: string | null, form: Form, win: Window, updatedAt?: unknown): Finding[] => {
    if (typeof version !== 'number') return [];
    const published = typeof updatedAt === 'string' ? Date.parse(updatedAt) : undefined;
    return versions.check(replica, table, version, canon, form, win, Number.isFinite(published) ? published : undefined);
  };

  /**
   * While Redis is away and until a replica has a rebuilt version of a table, it answers from the version it
   * holds: "does not exist" (or 404) is wrong then, whatever the lag. Not for a replica (re)started since the
   * kill (it holds nothing), nor for a table that had no readable file at some time since the kill (a
   * complete record without it may drop it).
   */
  const vanishedDuringLoss = (replica: number, table: string, win: Window): Finding[] =>
    win.end >= loss.killedAt &&
    versions.rebuiltSince(replica, table) === null &&
    versions.servedBeforeLoss(replica, table) &&
    stack!.upSince[replica]! < loss.killedAt &&
    !loss.emptied.has(table)
      ? [{ rule: 'table-vanished', table, detail: `replica ${replica} answered that ${table} does not exist after Redis lost its data, before it had a rebuilt version of it (it must keep serving the version it holds)` }]
      : [];

  /** `--redis-loss` measure: a rebuilt answer of `table` showing every file unchanged since before the kill. */
  const noteWhole = (replica: number, table: string, rows: ReadonlyMap<string, Rows>, win: Window) => {
    const key = `${replica}|${table}`;
    if (loss.wholeAt.has(key) || versions.rebuiltSince(replica, table) === null) return;
    for (const [fid, want] of model.unchangedAcross(table, loss.killedAt, win.end)) {
      const got = rows.get(fid);
      if (!got || got.n !== want.n || got.s !== want.s) return;
    }
    loss.wholeAt.set(key, win.end);
  };

  /**
   * Asks replica `r` one question, judges the answer (unless `judge` is false) and returns how it differs
   * from the folder now (empty: equal).
   */
  const askAndJudge = async (r: number, form: Form, table: string, judge = true): Promise<string[]> => {
    const port = stack!.ports[r]!;
    // Unique over the whole run, so an `uncached` text is never one the replica saw before.
    const sql = sqlOf(form, table, ++nonces);
    const epoch = stack!.epoch[r];
    const start = Date.now();
    const res = await ask(port, form, sql, table);
    const win = { start, end: Date.now() };
    const sentByEnd = writes.count;
    const unjudgeable = stack!.down[r] || stack!.epoch[r] !== epoch;
    if (judge) {
      stats.queries += 1;
      stats.byForm[form] = (stats.byForm[form] ?? 0) + 1;
    }
    const ctx = (answer: string) => ({ replica: r, form, sql, win, answer });
    const where = `replica ${r} ${form} ${table}`;
    if ('error' in res || (res.status !== 200 && !(res.status === 400 && /does not exist/i.test(JSON.stringify(res.body))) && !(form === 'errors' && res.status === 404))) {
      const what = 'error' in res ? `no answer: ${res.error}` : `HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`;
      if (unjudgeable || !judge) {
        if (judge) stats.skipped += 1;
      } else violate({ rule: 'unexpected-answer', table, detail: `${where}: ${what}` }, ctx(what));
      return [`${where}: ${what}`];
    }
    const judgeAll = (findings: Finding[], answer: () => string) => {
      if (!judge || unjudgeable) return;
      for (const f of findings) violate(f, ctx(answer()));
    };

    if (form === 'errors') {
      const errors = res.status === 404 ? ('missing' as const) : new Set(((res.body?.errors ?? []) as { file: string }[]).map((e) => e.file));
      const answer = () => (errors === 'missing' ? '404' : `version ${res.body?.version}, errors: ${[...errors].join(', ') || 'none'}`);
      judgeAll(
        [
          ...model.checkTableErrors(table, errors, win),
          ...(errors === 'missing' ? vanishedDuringLoss(r, table, win) : checkVersion(r, table, res.body?.version, null, form, win, res.body?.updatedAt)),
        ],
        answer,
      );
      const want = model.currentBadPaths(table);
      const got = errors === 'missing' ? new Set<string>() : errors;
      if (errors === 'missing' && model.hasFiles(table) && want.size) return [`${where}: 404, want errors ${[...want].join(', ')}`];
      const same = want.size === got.size && [...want].every((p) => got.has(p));
      return same ? [] : [`${where}: errors [${[...got].join(', ')}], want [${[...want].join(', ')}]`];
    }

    if (form === 'gamma') {
      if (res.status !== 200) {
        judgeAll([{ rule: 'table-vanished', table, detail: `${table} does not exist, but its base file is always there` }], () => JSON.stringify(res.body).slice(0, 300));
        return [`${where}: table missing`];
      }
      const rows = (res.body.rows as { id: unknown; v: unknown }[]).map((x) => ({ id: Number(x.id), v: String(x.v) }));
      const canon = rows.map((x) => `${x.id}=${x.v}`).join(' ');
      judgeAll([...writes.check(rows, sentByEnd), ...checkVersion(r, table, res.body.tables?.[table], canon, form, win)], () => `version ${res.body.tables?.[table]}: ${canon}`);
      return writesUncertain ? [] : writes.diffNow(rows).map((d) => `${where}: ${d}`);
    }

    let answer: TableAnswer;
    let version: unknown;
    if (res.status === 200) {
      const rows = new Map<string, Rows>();
      for (const x of res.body.rows as { fid: unknown; n: unknown; s: unknown }[]) rows.set(String(x.fid), { n: Number(x.n), s: Number(x.s) });
      answer = { kind: 'rows', rows };
      version = res.body.tables?.[table];
      if (judge && !unjudgeable) measure(r, table, rows, win);
    } else answer = { kind: 'missing' };
    const findings = model.checkTableAnswer(table, answer, win);
    if (answer.kind === 'rows') {
      findings.push(...checkVersion(r, table, version, canonical(answer.rows), form, win));
      if (judge && !unjudgeable && win.start >= loss.backAt) noteWhole(r, table, answer.rows, win);
    } else findings.push(...vanishedDuringLoss(r, table, win));
    judgeAll(findings, () => (answer.kind === 'missing' ? 'table does not exist' : `${typeof version === 'number' ? `version ${version}` : 'no version in the answer'}; ${describeRows(answer.rows)}`));
    return model.diffNow(table, answer).map((d) => `${where}: ${d}`);
  };

  const questions = (): [Form, string][] => [
    ...CHURN_TABLES.flatMap((t) => (['plain', 'uncached', 'query_table', 'errors'] as const).map((f): [Form, string] => [f, t])),
    ...(options.writes ? [['gamma', WRITES_TABLE] as [Form, string]] : []),
  ];

  /** Asks every replica every question until all equal the folder; returns the last differences. */
  const converge = async (deadline: number, judge: boolean): Promise<string[]> => {
    for (;;) {
      const diffs: string[] = [];
      for (let r = 0; r < stack!.ports.length; r++) {
        if (stack!.down[r]) {
          diffs.push(`replica ${r} is down`);
          continue;
        }
        for (const [form, table] of questions()) diffs.push(...(await askAndJudge(r, form, table, judge)));
      }
      if (diffs.length === 0 || Date.now() > deadline) return diffs;
      await sleep(300);
    }
  };

  try {
    const hooks: WorkloadHooks = {};
    const killAt = new Map<number, KillTarget>();
    workload = new Workload(dataDir, new Prng(options.seed), model, conn, hooks, { writes: options.writes, killAt });
    await workload.seed();
    if (options.writes) {
      await mkdir(path.join(dataDir, WRITES_TABLE), { recursive: true });
      const base = [...writes.current()].map(([id, v]) => `${id},${v}`).join('\n');
      await writeFile(path.join(dataDir, WRITES_TABLE, 'base.csv'), `id,v\n${base}\n`);
    }
    if (options.redisLoss) redis = await PrivateRedis.start();
    stack = await ChurnStack.start({ prefix, dataDir, work, replicas: options.replicas, writes: options.writes, busy: options.busy, appsRoot: options.appsRoot, redisUrl: redis?.url });
    const startupDiffs = await converge(Date.now() + 120_000, false);
    if (startupDiffs.length) throw new Error(`the stack did not serve the initial files within 120 s:\n  ${startupDiffs.slice(0, 20).join('\n  ')}`);
    out(`  stack up in ${Date.now() - started} ms (ports ${stack.ports.join(', ')}${redis ? `; private Redis on port ${redis.port}` : ''})`);

    // From here on every answer is judged.
    const s = stack;
    if (options.kill) {
      killAt.set(Math.max(1, Math.floor(options.ops * 0.3)), 'cacher');
      killAt.set(Math.max(2, Math.floor(options.ops * 0.55)), 'query-api');
    }
    // Early enough that most of the churn (and the writes) runs on the rebuilt Redis; between the two kills.
    if (options.redisLoss) {
      let at = Math.max(3, Math.floor(options.ops * 0.42));
      while (killAt.has(at)) at += 1;
      killAt.set(at, 'redis');
    }
    const outageNow = (t: number) => t >= loss.killedAt && t < loss.backAt;
    hooks.sendWrite = async (op, rows) => {
      if (s.down[0]) return 'skipped: replica 0 is down';
      writes.apply(op, rows);
      try {
        const res = await fetch(`http://127.0.0.1:${s.ports[0]}/v1/tables/${WRITES_TABLE}/${op}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ key: ['id'], rows }),
          signal: AbortSignal.timeout(30_000),
        });
        const body = await res.text();
        if (res.status === 202) {
          const writeId = (JSON.parse(body) as { writeId: string }).writeId;
          writeIds.set(writes.count, writeId.slice(WRITES_TABLE.length + 1));
          return `queued ${writeId}`;
        }
        writes.retract();
        // Refused while Redis is away: not sent. 503 is the answer that says so; anything else is not.
        if (outageNow(Date.now()) && res.status === 503) loss.refused += 1;
        else if (outageNow(Date.now())) {
          violate(
            { rule: 'unexpected-answer', table: WRITES_TABLE, detail: `a write sent while Redis was down was answered HTTP ${res.status} (want 503): ${body.slice(0, 300)}` },
            { replica: 0, form: 'gamma', sql: `POST /v1/tables/${WRITES_TABLE}/${op}`, win: { start: Date.now(), end: Date.now() }, answer: body.slice(0, 300) },
          );
        }
        return `refused: HTTP ${res.status} ${body.slice(0, 200)}`;
      } catch (err) {
        writesUncertain = true;
        return `no answer (${(err as Error).message}): unknown whether it was queued; the final gamma check is off`;
      }
    };
    /**
     * Redis loses its data: with writes paused (so nothing is published or applied meanwhile), read each
     * table's last published version and which queued writes were applied, then SIGKILL redis-server. Every
     * replica's /v1/status must answer within its deadline that Redis is unreachable; 1–2 s later redis-server
     * starts again, empty, on the same port. The operations and the queries go on throughout.
     */
    const loseRedis = async (r: PrivateRedis): Promise<string> => {
      const keys = createKeys(prefix);
      const client = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
      client.on('error', () => undefined);
      await client.connect();
      await client.call('CLIENT', 'PAUSE', '10000', 'WRITE');
      const tables = [...CHURN_TABLES, ...(options.writes ? [WRITES_TABLE] : [])];
      for (const t of tables) {
        const json = await client.hget(keys.tableMeta(t), 'json');
        if (json) loss.lastPre.set(t, (JSON.parse(json) as { version: number }).version);
      }
      const states = options.writes ? await client.hgetall(keys.tableWriteState(WRITES_TABLE)) : {};
      const appliedUpTo = options.writes ? await client.get(keys.tableWritesApplied(WRITES_TABLE)) : null;
      const unknown = CHURN_TABLES.filter((t) => !loss.lastPre.has(t));
      // Every era judgement leans on these numbers: without them the run cannot judge (a checker problem).
      if (unknown.length) throw new Error(`no snapshot metadata of ${unknown.join(', ')} in Redis (${keys.tableMeta(unknown[0]!)} json) before the kill`);
      loss.killedAt = await r.kill();
      client.disconnect();
      versions.redisLost(loss.killedAt, loss.lastPre);
      const outage = model.addOutage(loss.killedAt);
      for (const t of CHURN_TABLES) if (model.currentRows(t).size === 0) loss.emptied.add(t);
      for (const [n, id] of writeIds) {
        const status = states[id] ? (JSON.parse(states[id]) as { status: string }).status : 'unknown';
        if (status === 'applied' || (appliedUpTo && compareStreamIds(id, appliedUpTo) <= 0)) continue;
        writes.uncertain.add(n);
        loss.lostWrites.push(n);
      }
      const statusChecks = s.ports.map(async (port, i) => {
        if (s.down[i]) return;
        const asked = Date.now();
        let what: string;
        let ok = false;
        try {
          const res = await fetch(`http://127.0.0.1:${port}/v1/status`, { signal: AbortSignal.timeout(STATUS_DEADLINE_MS) });
          const body = (await res.json()) as { redis?: { reachable?: boolean; error?: string } };
          const ms = Date.now() - asked;
          ok = res.status === 200 && body.redis?.reachable === false && ms <= STATUS_DEADLINE_MS;
          what = `HTTP ${res.status} in ${ms} ms, reachable=${body.redis?.reachable}${ok ? '' : ` (${JSON.stringify(body).slice(0, 300)})`}`;
        } catch (err) {
          what = `no answer within ${STATUS_DEADLINE_MS} ms (${(err as Error).message})`;
        }
        loss.status.push(`replica ${i}: ${what}`);
        if (!ok) {
          violate(
            { rule: 'status-during-outage', detail: `replica ${i}: GET /v1/status while Redis was down: ${what} (want 200 within ${STATUS_DEADLINE_MS} ms with redis.reachable false)` },
            { replica: i, form: 'errors', sql: 'GET /v1/status', win: { start: asked, end: Date.now() }, answer: what },
          );
        }
      });
      const downMs = 1_000 + new Prng(options.seed ^ 0x2545f491).int(0, 1_000);
      pending.push(
        (redisBack = (async () => {
          // Started again only once the status checks answered: "unreachable" is then the only right answer.
          await Promise.all([sleep(downMs), ...statusChecks]);
          loss.restartedAt = Date.now();
          versions.redisRestarted(loss.restartedAt);
          const { answeringAt } = await r.up();
          loss.backAt = answeringAt;
          outage.to = answeringAt + REDIS_RECOVERY_MS;
          out(`  Redis started again (empty) ${rel(loss.restartedAt)} ms into the churn, ${loss.restartedAt - loss.killedAt} ms after the kill; answering after ${answeringAt - loss.restartedAt} ms`);
        })()),
      );
      const lost = loss.lostWrites.length ? `; writes queued and not applied, which may be lost: #${loss.lostWrites.join(', #')}` : '';
      return `SIGKILL redis-server (port ${r.port}; last versions ${[...loss.lastPre].map(([t, v]) => `${t}@${v}`).join(', ')}${lost}); started again empty in ${downMs} ms`;
    };
    hooks.kill = async (component) => {
      if (component === 'redis') return redis ? await loseRedis(redis) : 'no private Redis';
      if (component === 'cacher') {
        const { killedAt, recovered } = await s.killCacher();
        const outage = model.addOutage(killedAt);
        pending.push(recovered.then((to) => void (outage.to = to)));
        return 'SIGKILL cacher; a new one started';
      }
      const { back } = await s.killReplica(killReplica);
      pending.push(
        back.catch((err: unknown) => {
          violate({ rule: 'replica-did-not-come-back', detail: (err as Error).message }, { replica: killReplica, form: 'plain', sql: '', win: { start: Date.now(), end: Date.now() }, answer: '' });
        }),
      );
      return `SIGKILL query-api replica ${killReplica} (port ${s.ports[killReplica]}); restarted`;
    };
    t0 = Date.now();

    let stopQueries = false;
    const loops = s.ports.map(async (_port, r) => {
      const rng = new Prng(options.seed * 31 + r + 1);
      while (!stopQueries) {
        if (s.down[r]) {
          await sleep(50);
          continue;
        }
        const form = rng.weighted<Form>([
          ['plain', 4],
          ['uncached', 3],
          ['query_table', 2],
          ['errors', 1],
          ['gamma', options.writes ? 1.5 : 0],
        ]);
        await askAndJudge(r, form, form === 'gamma' ? WRITES_TABLE : rng.pick(CHURN_TABLES));
        await new Promise((resolve) => setImmediate(resolve));
      }
    });

    const pace = new Prng(options.seed ^ 0x5bd1e995);
    const budgetEnd = t0 + options.seconds * 1000;
    // Gaps fill 80% of the budget: operations take time too (a storm half a second, a kill a few hundred ms).
    const meanGap = (options.seconds * 1000 * 0.8) / options.ops;
    let at = t0;
    let done = 0;
    try {
      for (let i = 0; i < options.ops; i++) {
        at += meanGap * pace.weighted([
          [0, 2],
          [0.3, 2],
          [1, 3],
          [2, 2],
          [3, 1],
        ]);
        if (Date.now() > budgetEnd) {
          out(`  the time budget ran out after ${i} of ${options.ops} operations`);
          break;
        }
        const wait = Math.min(at, budgetEnd) - Date.now();
        if (wait > 0) await sleep(wait);
        const op = await workload.step(i);
        done += 1;
        if (Date.now() >= loss.killedAt) for (const t of CHURN_TABLES) if (model.currentRows(t).size === 0) loss.emptied.add(t);
        if (options.verbose) out(`  op ${fmtOp(op)}`);
      }
      for (const op of await workload.finish(options.ops)) {
        done += 1;
        if (options.verbose) out(`  op ${fmtOp(op)}`);
      }
    } finally {
      stopQueries = true;
      await Promise.all(loops);
    }
    await Promise.all(pending);
    const lastOpEnd = Date.now();
    const diffs = await converge(lastOpEnd + options.convergeMs, true);
    if (diffs.length) {
      violate(
        { rule: 'no-convergence', detail: `${options.convergeMs} ms after the last operation, answers still differ from the folder:\n      ${diffs.slice(0, 30).join('\n      ')}` },
        { replica: -1, form: 'plain', sql: '', win: { start: lastOpEnd, end: Date.now() }, answer: '' },
      );
    } else stats.convergeMs = Date.now() - lastOpEnd;

    let lossSummary = '';
    if (options.redisLoss && loss.killedAt === Infinity) {
      violate(
        { rule: 'redis-loss-not-run', detail: `the time budget ran out before operation #${[...killAt].find(([, k]) => k === 'redis')?.[0]}, the Redis kill: the fault was not injected` },
        { replica: -1, form: 'plain', sql: '', win: { start: Date.now(), end: Date.now() }, answer: '' },
      );
    } else if (options.redisLoss) {
      // Every replica serves a rebuilt version of every table: asked by GET /v1/tables/<t>, whose publish time
      // tells the era, where the answers so far did not tell.
      const tables = [...CHURN_TABLES, ...(options.writes ? [WRITES_TABLE] : [])];
      for (let r = 0; r < s.ports.length; r++) {
        for (const t of tables) {
          if (versions.rebuiltSince(r, t) === null && !s.down[r]) await askAndJudge(r, 'errors', t, true);
          if (versions.rebuiltSince(r, t) === null && (t === WRITES_TABLE || model.hasFiles(t))) {
            violate(
              { rule: 'not-rebuilt', table: t, detail: `replica ${r} never answered with a version of ${t} rebuilt after Redis lost its data` },
              { replica: r, form: 'errors', sql: `GET /v1/tables/${t}`, win: { start: Date.now(), end: Date.now() }, answer: '' },
            );
          }
        }
      }
      const since = (at: number | null | undefined) => (at == null ? 'never' : `${at - loss.backAt}ms`);
      const latest = (xs: (number | null | undefined)[]) => (xs.some((x) => x == null) ? null : Math.max(...(xs as number[])));
      const rebuilt = latest(s.ports.flatMap((_p, r) => tables.map((t) => versions.rebuiltSince(r, t))));
      const whole = latest(s.ports.flatMap((_p, r) => CHURN_TABLES.map((t) => loss.wholeAt.get(`${r}|${t}`))));
      const outcome = writes.lastOutcome;
      const lostWrites = loss.lostWrites.length
        ? `#${loss.lostWrites.join(', #')}${outcome ? ` (${loss.lostWrites.map((n) => `#${n} ${outcome.includes(n) ? 'applied' : 'lost'}`).join(', ')})` : ''}`
        : 'none';
      lossSummary =
        ` redisLoss=(down ${loss.restartedAt - loss.killedAt}ms; after Redis answered again: every table rebuilt on every replica ${since(rebuilt)}, whole ${since(whole)}; ` +
        `writes queued and not applied at the kill: ${lostWrites}; writes refused while down: ${loss.refused}; status during the outage: ${loss.status.join('; ')})`;
      out(
        `  Redis loss: killed ${rel(loss.killedAt)} ms into the churn, started again ${loss.restartedAt - loss.killedAt} ms later, answering after ${loss.backAt - loss.restartedAt} ms; ` +
          `first rebuilt / first whole rebuilt answer after that, per replica/table: ` +
          s.ports
            .flatMap((_p, r) => tables.map((t) => `${r}/${t} ${since(versions.rebuiltSince(r, t))}${t === WRITES_TABLE ? '' : ` / ${since(loss.wholeAt.get(`${r}|${t}`))}`}`))
            .join(', '),
      );
    }

    const durationMs = Date.now() - started;
    const kinds = Object.entries(workload.counts)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    const list = [...distinct.values()];
    if (list.length) {
      out(`\nFAILED: ${violations} violation(s): ${groups.size} rule/query-form pair(s), ${list.length} distinct rule/table/file triple(s). seed=${options.seed}\n  replay: ${replay}`);
      for (const { first: v, count, files } of [...groups.values()].slice(0, 12)) {
        out(`\n  [${v.rule}] via ${v.form} ×${count}${files.size ? ` (${files.size} file(s): ${[...files].slice(0, 12).join(', ')}${files.size > 12 ? ', …' : ''})` : ''}`);
        out(`    first: replica ${v.replica}, answer window [${v.window.start}..${v.window.end}] ms since the churn started`);
        out(`    ${v.detail}`);
        if (v.sql) out(`    sql: ${v.sql}`);
        if (v.answer) out(`    answer: ${v.answer}`);
        if (v.expected.length) out(`    states of ${v.fid} (made by op [start..end] → replaced [start..end]):\n${v.expected.join('\n')}`);
        if (v.recentOps.length) out(`    last operations before the answer ended:\n      ${v.recentOps.join('\n      ')}`);
      }
    }
    if (list.length || options.verbose) {
      const logFile = path.join(os.tmpdir(), `flashduck-churn-${options.seed}-${process.pid}.log`);
      await writeFile(logFile, `${replay}\n\n== operations (ms since ${new Date(t0).toISOString()})\n${workload.log.map(fmtOp).join('\n')}\n\n== processes\n${stack.logs()}\n`);
      out(`\n  operations and process logs: ${logFile}`);
    }
    // Versions published by merges during the run (each one checked like any other version).
    const merges = (stack.logs().match(/parts merged/g) ?? []).length;
    const byRule = [...groups.entries()].map(([k, g]) => `${k.replace('|', ' via ')} ${g.count}`).join(', ');
    const summary =
      `churn summary: seed=${options.seed} operations=${done} (${kinds}) queries=${stats.queries} ` +
      `(${Object.entries(stats.byForm).map(([f, n]) => `${f} ${n}`).join(', ')}; ${stats.skipped} skipped while a replica restarted) ` +
      `violations=${violations}${byRule ? ` (${byRule})` : ''} duration=${(durationMs / 1000).toFixed(1)}s ` +
      `converged=${stats.convergeMs >= 0 ? `${stats.convergeMs}ms` : 'no'} maxStale=${stats.maxStaleMs}ms maxDelay=${stats.maxDelayMs}ms merges=${merges}${lossSummary}` +
      `${writesUncertain ? ' (a write got no answer: final gamma check skipped)' : ''}`;
    out(summary);
    return { options, ops: done, queries: stats.queries, violations, distinct: list, durationMs, merges, summary };
  } finally {
    await stack?.stop().catch(() => undefined);
    await redisBack?.catch(() => undefined);
    await redis?.kill();
    conn.closeSync();
    duck.closeSync();
    if (!options.redisLoss) await deletePrefix(TEST_REDIS_URL, prefix).catch(() => undefined);
    await removeDir(dataDir);
    await removeDir(work);
  }
}
