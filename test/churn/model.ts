/**
 * The reference model of the churn checker, and the rules every answer is judged by. Pure: no I/O, no clock.
 *
 * Every data file has an identity (`fid`, written into each of its rows) that a rename or a move keeps. For
 * each identity the model keeps the history of its states — table, path, row count `n`, `sum(seq)` `s`,
 * unreadable or not — each with the window in which it began (the operation's start and end) and in which it
 * was replaced. The consistency model (docs/OPERATIONS.md, "What a reader sees while files change") becomes these rules for an answer that started at
 * `start` and ended at `end`:
 *
 * - state-never-existed / state-too-old: every fid an answer shows in table t, with (n, s), is a state that
 *   fid really had in t at some time within [start - lag, end].
 * - stable-rows-hidden / table-vanished: a fid whose rows in t have not changed (renames within t keep them)
 *   since before start - lag, and do not change until end, is shown, and its table exists.
 * - version-went-back: a replica never serves an older version of a table than it served before (nor, after a
 *   loss of Redis's data, a version from before it once it served a rebuilt one).
 * - same-version-different-rows: a table version has one content, on every replica, cached or not.
 * - unreadable-file-not-reported / readable-file-reported: once the lag has passed, `errors` of the table
 *   names exactly its unreadable files.
 * - no-convergence: once the churn stops, every replica equals the folder within a bound.
 *
 * Time the cacher was down (a SIGKILL until its replacement can build), or Redis (`--redis-loss`: from the kill
 * until it answers again plus a recovery allowance), does not count towards the lag. Across a loss of Redis's
 * data versions are compared within one era only (see VersionRules).
 */

/** What the checker asks of a file's rows in one table. */
export interface Rows {
  readonly n: number;
  readonly s: number;
}

export interface FileState extends Rows {
  readonly fid: string;
  /** Table the file belongs to; null while it is in no table (deleted, or renamed to a hidden name). */
  readonly table: string | null;
  /** Path relative to the data dir (null once deleted). */
  readonly path: string | null;
  /** The file cannot be read (it never contributes rows). */
  readonly bad: boolean;
  /** Index of the operation that made this state. */
  readonly op: number;
  /** Start of that operation: the state may exist from here. */
  readonly begin: number;
  /** End of that operation: the state surely exists from here. */
  readonly settled: number;
  /** Start of the operation that replaced it: the state may be gone from here (Infinity while current). */
  endBegin: number;
  /** End of that operation: the state is surely gone from here (Infinity while current). */
  end: number;
}

export type NextState = Pick<FileState, 'table' | 'path' | 'n' | 's' | 'bad'>;

/** One broken rule, with what the checker saw and what it expected. */
export interface Finding {
  readonly rule: string;
  readonly table?: string;
  readonly fid?: string;
  readonly detail: string;
}

export interface Window {
  readonly start: number;
  readonly end: number;
}

/** A table answer as the checker reads it: fid → rows, or the table does not exist. */
export type TableAnswer = { readonly kind: 'rows'; readonly rows: ReadonlyMap<string, Rows> } | { readonly kind: 'missing' };

const sameContent = (a: FileState, b: FileState) => a.table === b.table && a.n === b.n && a.s === b.s && a.bad === b.bad;
const sameFile = (a: FileState, b: FileState) => sameContent(a, b) && a.path === b.path;

export class Model {
  private readonly history = new Map<string, FileState[]>();
  readonly outages: { from: number; to: number }[] = [];

  constructor(readonly lagMs: number) {}

  /** Records that operation `op`, running from `begin` to `settled`, gave file `fid` its next state (null: deleted). */
  set(fid: string, next: NextState | null, op: number, begin: number, settled: number): void {
    let states = this.history.get(fid);
    if (!states) this.history.set(fid, (states = []));
    const prev = states.at(-1);
    if (prev && prev.end === Infinity) {
      prev.endBegin = begin;
      prev.end = settled;
    }
    const state = next ?? { table: null, path: null, n: 0, s: 0, bad: false };
    states.push({ fid, ...state, op, begin, settled, endBegin: Infinity, end: Infinity });
  }

  /** Time in which the lag clock stands still (the cacher was down and its build lease not yet free). */
  addOutage(from: number, to = Infinity): { to: number } {
    const o = { from, to };
    this.outages.push(o);
    return o;
  }

  /** Milliseconds from `a` to `b` that count towards the lag (overlapping outages count once). */
  elapsed(a: number, b: number): number {
    if (b <= a) return b - a;
    let down = 0;
    let upTo = a;
    for (const o of [...this.outages].sort((x, y) => x.from - y.from)) {
      const from = Math.max(upTo, o.from);
      const to = Math.min(b, o.to);
      if (to > from) down += to - from;
      upTo = Math.max(upTo, Math.min(b, o.to));
    }
    return b - a - down;
  }

  statesOf(fid: string): readonly FileState[] {
    return this.history.get(fid) ?? [];
  }

  fids(): IterableIterator<string> {
    return this.history.keys();
  }

  /** Readable rows per fid of a table as the folder holds it now. */
  currentRows(table: string): Map<string, Rows> {
    const out = new Map<string, Rows>();
    for (const [fid, states] of this.history) {
      const s = states.at(-1)!;
      if (s.table === table && !s.bad && s.n > 0) out.set(fid, { n: s.n, s: s.s });
    }
    return out;
  }

  /** Paths of the unreadable files of a table now. */
  currentBadPaths(table: string): Set<string> {
    const out = new Set<string>();
    for (const states of this.history.values()) {
      const s = states.at(-1)!;
      if (s.table === table && s.bad && s.path) out.add(s.path);
    }
    return out;
  }

  /** True when the table has any file now (readable or not). */
  hasFiles(table: string): boolean {
    for (const states of this.history.values()) if (states.at(-1)!.table === table) return true;
    return false;
  }

  /**
   * The state of `fid` that has held (equal by `same`) from before `win.start - lag` until after `win.end`,
   * or null. Consecutive states equal by `same` (renames within a table, for content) form one stretch.
   */
  private stableAcross(fid: string, win: Window, same: (a: FileState, b: FileState) => boolean): FileState | null {
    const states = this.history.get(fid) ?? [];
    for (let i = 0; i < states.length; i++) {
      const first = states[i]!;
      let j = i;
      while (j + 1 < states.length && same(states[j + 1]!, first)) j++;
      const last = states[j]!;
      if (this.elapsed(first.settled, win.start) >= this.lagMs && last.endBegin > win.end) return last;
      i = j;
    }
    return null;
  }

  /** Every rule about one answer of `SELECT fid, count(*), sum(seq) FROM <table> GROUP BY fid`. */
  checkTableAnswer(table: string, answer: TableAnswer, win: Window): Finding[] {
    const findings: Finding[] = [];
    if (answer.kind === 'rows') {
      for (const [fid, got] of answer.rows) {
        const states = (this.history.get(fid) ?? []).filter((s) => s.table === table && !s.bad && s.n === got.n && s.s === got.s);
        if (states.length === 0) {
          const known = this.history.has(fid);
          findings.push({
            rule: 'state-never-existed',
            table,
            fid,
            detail: known
              ? `${fid} shows n=${got.n} s=${got.s} in ${table}, a state it never had there (half an append, a mix of two states, or rows in the wrong table)`
              : `${fid} is not a file the workload ever wrote`,
          });
          continue;
        }
        const ok = states.some((s) => s.begin <= win.end && (s.end === Infinity || this.elapsed(s.end, win.start) <= this.lagMs));
        if (!ok) {
          const newest = states.reduce((a, b) => (b.end > a.end ? b : a));
          findings.push({
            rule: 'state-too-old',
            table,
            fid,
            detail: `${fid} shows n=${got.n} s=${got.s} in ${table}, a state that ended ${this.elapsed(newest.end, win.start)} ms (lag clock) before the answer started; the lag bound is ${this.lagMs} ms`,
          });
        }
      }
    }
    const hidden: string[] = [];
    for (const fid of this.history.keys()) {
      const stable = this.stableAcross(fid, win, sameContent);
      if (!stable || stable.table !== table || stable.bad || stable.n === 0) continue;
      if (answer.kind === 'missing' || !answer.rows.has(fid)) hidden.push(fid);
    }
    if (hidden.length && answer.kind === 'missing') {
      findings.push({
        rule: 'table-vanished',
        table,
        fid: hidden[0],
        detail: `table ${table} does not exist, but ${hidden.length} file(s) have been in it unchanged for longer than the lag (${hidden.slice(0, 5).join(', ')})`,
      });
    } else {
      for (const fid of hidden) {
        findings.push({ rule: 'stable-rows-hidden', table, fid, detail: `${fid} has been in ${table} unchanged for longer than the lag (${this.lagMs} ms) but the answer does not show it` });
      }
    }
    return findings;
  }

  /** The rules about `errors` of `GET /v1/tables/<t>` (or its 404). */
  checkTableErrors(table: string, errors: ReadonlySet<string> | 'missing', win: Window): Finding[] {
    const findings: Finding[] = [];
    for (const fid of this.history.keys()) {
      const stable = this.stableAcross(fid, win, sameFile);
      if (!stable || stable.table !== table || !stable.path || (!stable.bad && stable.n === 0)) continue;
      if (errors === 'missing') {
        findings.push({ rule: 'table-vanished', table, fid, detail: `GET /v1/tables/${table} answers 404 but ${stable.path} has been in it unchanged for longer than the lag` });
        break;
      }
      if (stable.bad && !errors.has(stable.path)) {
        findings.push({ rule: 'unreadable-file-not-reported', table, fid, detail: `${stable.path} cannot be read and has been there for longer than the lag, but ${table}'s errors do not name it` });
      }
      if (!stable.bad && errors.has(stable.path)) {
        findings.push({ rule: 'readable-file-reported', table, fid, detail: `${stable.path} is readable and unchanged for longer than the lag, but ${table}'s errors name it` });
      }
    }
    return findings;
  }

  /**
   * The fids with rows in `table` unchanged (renames within it keep them) from before `since` until after
   * `until`, with those rows: what every version of the table built in between holds.
   */
  unchangedAcross(table: string, since: number, until: number): Map<string, Rows> {
    const out = new Map<string, Rows>();
    for (const [fid, states] of this.history) {
      for (let i = 0; i < states.length; i++) {
        const first = states[i]!;
        let j = i;
        while (j + 1 < states.length && sameContent(states[j + 1]!, first)) j++;
        const last = states[j]!;
        if (first.table === table && !first.bad && first.n > 0 && first.settled <= since && last.endBegin > until) out.set(fid, { n: first.n, s: first.s });
        i = j;
      }
    }
    return out;
  }

  /** Differences between an answer and the folder now (empty when equal). */
  diffNow(table: string, answer: TableAnswer): string[] {
    const want = this.currentRows(table);
    const got = answer.kind === 'rows' ? answer.rows : new Map<string, Rows>();
    const out: string[] = [];
    if (answer.kind === 'missing' && want.size) out.push(`table ${table} does not exist`);
    for (const [fid, w] of want) {
      const g = got.get(fid);
      if (!g) out.push(`${fid}: missing (want n=${w.n} s=${w.s})`);
      else if (g.n !== w.n || g.s !== w.s) out.push(`${fid}: n=${g.n} s=${g.s} (want n=${w.n} s=${w.s})`);
    }
    for (const [fid, g] of got) if (!want.has(fid)) out.push(`${fid}: n=${g.n} s=${g.s} shown but not in ${table} now`);
    return out;
  }

  /** A fid's history, one line per state, times relative to `t0`. */
  describe(fid: string, t0: number): string[] {
    const rel = (t: number) => (t === Infinity ? 'now' : `${t - t0}`);
    return this.statesOf(fid).map(
      (s) =>
        `    op#${s.op} [${rel(s.begin)}..${rel(s.settled)}]→[${rel(s.endBegin)}..${rel(s.end)}] ` +
        (s.table === null ? 'not in any table' : `${s.table} ${s.path} ${s.bad ? 'UNREADABLE' : `n=${s.n} s=${s.s}`}`),
    );
  }
}

/** The builds an answer can come from: published before Redis lost its data, or rebuilt after. */
export type Era = 'pre' | 'post';

/** What one replica answered about one table, per era. */
interface ReplicaTable {
  /** Highest pre-loss version the replica answered with. */
  preMax: number;
  /** End of its first answer from a rebuilt version (null: none yet). */
  postSince: number | null;
  /** Highest rebuilt version it answered with. */
  postMax: number;
}

/**
 * version-went-back and same-version-different-rows, also across a loss of Redis's data.
 *
 * Without a loss: a replica never answers with an older version of a table than before, and a version has
 * one content on every replica. When Redis loses its data the version numbers start again at 1 (docs/OPERATIONS.md,
 * "Redis is a cache of the folder"): the builds published before the loss and the rebuilt ones are two eras,
 * and versions are compared only within one era; once a replica answered with a rebuilt version of a table
 * it never answers with a pre-loss one of that table again. The era of an answer:
 * - it ended before Redis was started again: pre (no rebuilt version existed yet);
 * - `GET /v1/tables/<t>` carries the version's publish time (`updatedAt`): pre exactly when before the kill;
 * - its version is above the table's last version published before the loss (read from Redis with writes
 *   paused, right before the kill): post;
 * - the replica answered with a rebuilt version of the table before: post (else it went back);
 * - its version is below the highest pre-loss version the replica answered with: post (the one drop allowed,
 *   and only once Redis was started again);
 * - else (a number both eras have, the replica not yet known to have swapped): the content decides when one
 *   era's content of that version is known (the pre content: pre; another: post); when neither is known the
 *   answer is not recorded for either era.
 */
export class VersionRules {
  private readonly tracks = new Map<string, ReplicaTable>();
  private readonly contents = new Map<string, { canon: string; replica: number; form: string }>();
  private loss: { killedAt: number; restartedAt: number; lastPre: ReadonlyMap<string, number> } | null = null;

  /** Redis was killed at `killedAt`; `lastPre`: each table's version published last before that. */
  redisLost(killedAt: number, lastPre: ReadonlyMap<string, number>): void {
    this.loss = { killedAt, restartedAt: Infinity, lastPre };
  }

  /** Redis was started again (empty) at `at`: rebuilt versions may exist from here. */
  redisRestarted(at: number): void {
    if (this.loss) this.loss.restartedAt = at;
  }

  /** When replica `replica` first answered with a rebuilt version of `table` (null: not yet). */
  rebuiltSince(replica: number, table: string): number | null {
    return this.tracks.get(`${replica}|${table}`)?.postSince ?? null;
  }

  /** True when the replica answered with `table` (any version) before Redis lost its data. */
  servedBeforeLoss(replica: number, table: string): boolean {
    return (this.tracks.get(`${replica}|${table}`)?.preMax ?? 0) > 0;
  }

  private eraOf(table: string, version: number, win: Window, updatedAt: number | undefined): Era | null {
    const loss = this.loss;
    if (!loss || win.end < loss.restartedAt) return 'pre';
    if (updatedAt !== undefined) return updatedAt < loss.killedAt ? 'pre' : 'post';
    if (version > (loss.lastPre.get(table) ?? 0)) return 'post';
    return null;
  }

  /**
   * Judges one answer of replica `replica` with `table` at `version`; `canon` is its content (null: not a
   * content answer), `updatedAt` the version's publish time when the answer carries it.
   */
  check(replica: number, table: string, version: number, canon: string | null, form: string, win: Window, updatedAt?: number): Finding[] {
    const findings: Finding[] = [];
    const key = `${replica}|${table}`;
    let t = this.tracks.get(key);
    if (!t) this.tracks.set(key, (t = { preMax: 0, postSince: null, postMax: 0 }));
    const known = this.eraOf(table, version, win, updatedAt);
    const back = (detail: string) => findings.push({ rule: 'version-went-back', table, detail: `replica ${replica} ${detail}` });
    const contentOf = (era: Era) => (canon === null ? undefined : this.contents.get(`${table}|${era}|${version}`));
    let era: Era | null;
    if (t.postSince !== null) {
      if (known === 'pre') {
        era = 'pre';
        back(`answered with ${table} version ${version} published before Redis lost its data, after it had answered with rebuilt version ${t.postMax}`);
      } else {
        era = 'post';
        if (version < t.postMax) back(`served ${table} rebuilt version ${version} after rebuilt version ${t.postMax}`);
        else t.postMax = version;
      }
    } else if (known === 'pre') {
      era = 'pre';
      if (version < t.preMax) back(`served ${table} version ${version} after version ${t.preMax}`);
      else t.preMax = version;
    } else if (known === 'post' || version < t.preMax) {
      era = 'post';
    } else {
      const pre = contentOf('pre');
      const post = contentOf('post');
      if (canon === null) era = null;
      else if (pre?.canon === canon) era = 'pre';
      else if (post?.canon === canon) era = 'post';
      else if (pre && post) {
        era = null;
        findings.push({
          rule: 'same-version-different-rows',
          table,
          detail: `${table} version ${version} answered by replica ${replica} (${form}) with [${canon}], neither its content before Redis lost its data [${pre.canon}] nor its rebuilt content [${post.canon}]`,
        });
      } else if (pre) era = 'post';
      else if (post) era = 'pre';
      else era = null;
      if (era === 'pre') t.preMax = version;
    }
    if (era === 'post' && t.postSince === null) {
      t.postSince = win.end;
      t.postMax = version;
    }
    if (era && canon !== null) {
      const first = contentOf(era);
      if (!first) this.contents.set(`${table}|${era}|${version}`, { canon, replica, form });
      else if (first.canon !== canon) {
        const pre = era === 'post' ? contentOf('pre') : undefined;
        if (pre?.canon === canon && known !== 'post') {
          back(`answered with ${table} version ${version} as published before Redis lost its data ([${canon}]) after it had answered with rebuilt versions (rebuilt version ${version} is [${first.canon}])`);
        } else {
          const which = this.loss ? (era === 'pre' ? ' (published before Redis lost its data)' : ' (rebuilt)') : '';
          findings.push({
            rule: 'same-version-different-rows',
            table,
            detail: `${table} version ${version}${which} answered differently: replica ${first.replica} (${first.form}) gave [${first.canon}], replica ${replica} (${form}) gave [${canon}]`,
          });
        }
      }
    }
    return findings;
  }
}

/**
 * The writes to table `gamma`, in the order the API acknowledged them (one sender, so stream order). The
 * value a key shows must be one it had after some prefix of the writes sent by the time the answer ended;
 * files change without a transaction across them, so the answer as a whole need not be one prefix.
 */
export class WritesModel {
  /** Per key: the values it took, with the number of writes after which it took each (null: absent). */
  private readonly timeline = new Map<number, { after: number; v: string | null }[]>();
  private readonly now = new Map<number, string>();
  /** Writes accepted so far. */
  count = 0;
  /**
   * Writes (by number) that may or may not be applied: queued, and not yet applied when Redis lost its data
   * (docs/OPERATIONS.md: writes queued and not yet applied are lost with it). Every other accepted write must be applied.
   */
  readonly uncertain = new Set<number>();
  /** The uncertain writes applied in the outcome the last answer equal to one was (null: none yet). */
  lastOutcome: number[] | null = null;

  constructor(base: ReadonlyMap<number, string>) {
    for (const [id, v] of base) {
      this.now.set(id, v);
      this.timeline.set(id, [{ after: 0, v }]);
    }
  }

  /**
   * A write about to be sent: applied after the `count` writes before it. Registered before the request, so an
   * answer can never see it "too early"; `retract` takes it back when the API did not queue it.
   */
  apply(op: 'upsert' | 'delete', rows: readonly { id: number; v?: string }[]): number {
    this.count += 1;
    for (const r of rows) {
      const v = op === 'upsert' ? r.v! : null;
      let t = this.timeline.get(r.id);
      if (!t) this.timeline.set(r.id, (t = [{ after: 0, v: null }]));
      t.push({ after: this.count, v });
    }
    this.recompute();
    return this.count;
  }

  /** Takes back the last write (the API refused it, so it was not queued). */
  retract(): void {
    for (const t of this.timeline.values()) while (t.length && t.at(-1)!.after === this.count) t.pop();
    this.count -= 1;
    this.recompute();
  }

  private recompute(): void {
    this.now.clear();
    for (const [id, t] of this.timeline) {
      const v = t.at(-1)?.v ?? null;
      if (v !== null) this.now.set(id, v);
    }
  }

  /** Every key's value after all accepted writes. */
  current(): ReadonlyMap<number, string> {
    return this.now;
  }

  check(rows: readonly { id: number; v: string }[], sentByEnd: number): Finding[] {
    const findings: Finding[] = [];
    const seen = new Set<number>();
    for (const r of rows) {
      if (seen.has(r.id)) findings.push({ rule: 'duplicate-key', table: 'gamma', detail: `key id=${r.id} shows more than once` });
      seen.add(r.id);
      const t = this.timeline.get(r.id) ?? [];
      if (!t.some((x) => x.v === r.v && x.after <= sentByEnd)) {
        findings.push({
          rule: 'write-value-never-existed',
          table: 'gamma',
          detail: `id=${r.id} shows v=${JSON.stringify(r.v)}, which it never had after any of the first ${sentByEnd} writes (it had: ${t.map((x) => `${x.after}:${x.v}`).join(' ')})`,
        });
      }
    }
    return findings;
  }

  /** The table after every accepted write except the uncertain ones not in `applied`. */
  private outcome(applied: ReadonlySet<number>): Map<number, string> {
    const out = new Map<number, string>();
    for (const [id, t] of this.timeline) {
      const last = t.filter((x) => !this.uncertain.has(x.after) || applied.has(x.after)).at(-1);
      if (last?.v != null) out.set(id, last.v);
    }
    return out;
  }

  private static diff(want: ReadonlyMap<number, string>, got: ReadonlyMap<number, string>): string[] {
    const out: string[] = [];
    for (const [id, v] of want) if (got.get(id) !== v) out.push(`id=${id}: ${got.has(id) ? JSON.stringify(got.get(id)) : 'missing'} (want ${JSON.stringify(v)})`);
    for (const [id, v] of got) if (!want.has(id)) out.push(`id=${id}: ${JSON.stringify(v)} shown but deleted`);
    return out;
  }

  /**
   * Differences between an answer and the table after every accepted write (empty when equal). With
   * uncertain writes: equal to the outcome of some subset of them (each applied whole or not at all).
   */
  diffNow(rows: readonly { id: number; v: string }[]): string[] {
    const got = new Map(rows.map((r) => [r.id, r.v]));
    if (this.uncertain.size === 0) return WritesModel.diff(this.now, got);
    const u = [...this.uncertain].sort((a, b) => a - b);
    if (u.length > 16) throw new Error(`${u.length} uncertain writes: too many subsets to try`);
    let best: string[] | null = null;
    for (let mask = 0; mask < 1 << u.length; mask++) {
      const applied = u.filter((_, i) => mask & (1 << i));
      const d = WritesModel.diff(this.outcome(new Set(applied)), got);
      if (d.length === 0) {
        this.lastOutcome = applied;
        return [];
      }
      if (!best || d.length < best.length) best = d;
    }
    return [...best!, `(no subset of the writes lost with Redis's data, #${u.join(', #')}, gives the answer; closest shown)`];
  }
}
