import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { TEST_REDIS_URL, deletePrefix, removeDir, tempDir, uniquePrefix } from '../helpers.js';
import { ChurnStack } from './churn-stack.js';
import { Model, WritesModel, type Finding, type Rows, type TableAnswer, type Window } from './model.js';
import { replayCommand, type ChurnOptions } from './options.js';
import { Prng } from './prng.js';
import { CHURN_TABLES, WRITES_BASE_KEYS, WRITES_TABLE, Workload, type OpRecord, type WorkloadHooks } from './workload.js';

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
      `${options.writes ? ' writes' : ''}${options.kill ? ' kill' : ''}${options.busy ? ' busy' : ''} lag=${options.lagMs}ms\n  replay: ${replay}`,
  );
  const prefix = uniquePrefix('churn');
  const dataDir = await tempDir('churn-data');
  const work = await tempDir('churn-work');
  const duck = await DuckDBInstance.create(':memory:');
  const conn = await duck.connect();
  let stack: ChurnStack | undefined;
  const model = new Model(options.lagMs);
  const writes = new WritesModel(new Map(Array.from({ length: WRITES_BASE_KEYS }, (_, i) => [i + 1, `b${i + 1}`])));
  let writesUncertain = false;
  const distinct = new Map<string, Violation>();
  let violations = 0;
  const stats = { queries: 0, skipped: 0, byForm: {} as Record<string, number>, maxStaleMs: 0, maxDelayMs: 0, convergeMs: -1 };
  const firstSeen = new Set<string>();
  let nonces = 0;
  const maxVersion = new Map<string, number>();
  const versionContent = new Map<string, { canon: string; replica: number; form: Form }>();
  const killReplica = options.replicas > 1 ? 1 + (options.seed % (options.replicas - 1)) : 0;
  const pending: Promise<void>[] = [];
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

  const checkVersion = (replica: number, table: string, version: unknown, canon: string | null, form: Form): Finding[] => {
    if (typeof version !== 'number') return [];
    const findings: Finding[] = [];
    const k = `${replica}|${table}`;
    const prev = maxVersion.get(k) ?? 0;
    if (version < prev) findings.push({ rule: 'version-went-back', table, detail: `replica ${replica} served ${table} version ${version} after version ${prev}` });
    else maxVersion.set(k, version);
    if (canon !== null) {
      const vk = `${table}@${version}`;
      const first = versionContent.get(vk);
      if (!first) versionContent.set(vk, { canon, replica, form });
      else if (first.canon !== canon) {
        findings.push({
          rule: 'same-version-different-rows',
          table,
          detail: `${table} version ${version} answered differently: replica ${first.replica} (${first.form}) gave [${first.canon}], replica ${replica} (${form}) gave [${canon}]`,
        });
      }
    }
    return findings;
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
      judgeAll([...model.checkTableErrors(table, errors, win), ...(errors === 'missing' ? [] : checkVersion(r, table, res.body?.version, null, form))], answer);
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
      judgeAll([...writes.check(rows, sentByEnd), ...checkVersion(r, table, res.body.tables?.[table], canon, form)], () => `version ${res.body.tables?.[table]}: ${canon}`);
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
    if (answer.kind === 'rows') findings.push(...checkVersion(r, table, version, canonical(answer.rows), form));
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
    const killAt = new Map<number, 'cacher' | 'query-api'>();
    workload = new Workload(dataDir, new Prng(options.seed), model, conn, hooks, { writes: options.writes, killAt });
    await workload.seed();
    if (options.writes) {
      await mkdir(path.join(dataDir, WRITES_TABLE), { recursive: true });
      const base = [...writes.current()].map(([id, v]) => `${id},${v}`).join('\n');
      await writeFile(path.join(dataDir, WRITES_TABLE, 'base.csv'), `id,v\n${base}\n`);
    }
    stack = await ChurnStack.start({ prefix, dataDir, work, replicas: options.replicas, writes: options.writes, busy: options.busy, appsRoot: options.appsRoot });
    const startupDiffs = await converge(Date.now() + 120_000, false);
    if (startupDiffs.length) throw new Error(`the stack did not serve the initial files within 120 s:\n  ${startupDiffs.slice(0, 20).join('\n  ')}`);
    out(`  stack up in ${Date.now() - started} ms (ports ${stack.ports.join(', ')})`);

    // From here on every answer is judged.
    const s = stack;
    if (options.kill) {
      killAt.set(Math.max(1, Math.floor(options.ops * 0.3)), 'cacher');
      killAt.set(Math.max(2, Math.floor(options.ops * 0.55)), 'query-api');
    }
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
        if (res.status === 202) return `queued ${(JSON.parse(body) as { writeId: string }).writeId}`;
        writes.retract();
        return `refused: HTTP ${res.status} ${body.slice(0, 200)}`;
      } catch (err) {
        writesUncertain = true;
        return `no answer (${(err as Error).message}): unknown whether it was queued; the final gamma check is off`;
      }
    };
    hooks.kill = async (component) => {
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
      const logFile = path.join(os.tmpdir(), `flashduck-churn-${options.seed}-${process.pid}.log`);
      await writeFile(logFile, `${replay}\n\n== operations (ms since ${new Date(t0).toISOString()})\n${workload.log.map(fmtOp).join('\n')}\n\n== processes\n${stack.logs()}\n`);
      out(`\n  operations and process logs: ${logFile}`);
    }
    const byRule = [...groups.entries()].map(([k, g]) => `${k.replace('|', ' via ')} ${g.count}`).join(', ');
    const summary =
      `churn summary: seed=${options.seed} operations=${done} (${kinds}) queries=${stats.queries} ` +
      `(${Object.entries(stats.byForm).map(([f, n]) => `${f} ${n}`).join(', ')}; ${stats.skipped} skipped while a replica restarted) ` +
      `violations=${violations}${byRule ? ` (${byRule})` : ''} duration=${(durationMs / 1000).toFixed(1)}s ` +
      `converged=${stats.convergeMs >= 0 ? `${stats.convergeMs}ms` : 'no'} maxStale=${stats.maxStaleMs}ms maxDelay=${stats.maxDelayMs}ms` +
      `${writesUncertain ? ' (a write got no answer: final gamma check skipped)' : ''}`;
    out(summary);
    return { options, ops: done, queries: stats.queries, violations, distinct: list, durationMs, summary };
  } finally {
    await stack?.stop().catch(() => undefined);
    conn.closeSync();
    duck.closeSync();
    await deletePrefix(TEST_REDIS_URL, prefix).catch(() => undefined);
    await removeDir(dataDir);
    await removeDir(work);
  }
}
