import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Model } from './model.js';
import type { Prng } from './prng.js';

/** The tables the file churn runs over (folders), and the one the API writes go to. */
export const CHURN_TABLES = ['alpha', 'beta'] as const;
export const WRITES_TABLE = 'gamma';
/** Keys the writes use; the base file holds 1..WRITES_BASE_KEYS. */
export const WRITES_KEYS = 30;
export const WRITES_BASE_KEYS = 12;

type Format = 'csv' | 'tsv' | 'json' | 'ndjson' | 'jsonl' | 'parquet';
const FORMATS: readonly Format[] = ['csv', 'tsv', 'parquet', 'json', 'ndjson', 'jsonl'];
/** Formats a producer appends to in place (a JSON array or Parquet file is rewritten instead). */
const APPENDABLE: readonly Format[] = ['csv', 'tsv', 'ndjson', 'jsonl'];

/** A data file as the workload knows it. */
interface FileRec {
  readonly fid: string;
  /** Table it counts for; while hidden, the table it was in. */
  table: string;
  /** Where it is now, relative to the data dir (a hidden name while hidden). */
  path: string;
  readonly format: Format;
  seqs: number[];
  readonly bad: boolean;
  hidden: boolean;
  /** Chunks still to append while written slowly (other operations leave the file alone meanwhile). */
  slowChunks: number;
}

/** One operation as it ran: what, on which file, and when (ms since the epoch). */
export interface OpRecord {
  readonly index: number;
  readonly kind: string;
  readonly detail: string;
  readonly begin: number;
  readonly end: number;
}

/** What a kill operation kills. */
export type KillTarget = 'cacher' | 'query-api' | 'redis';

/** What the workload needs from the runner besides the file system. */
export interface WorkloadHooks {
  /** Sends one write through the API; true when it was queued (202). */
  sendWrite?: (op: 'upsert' | 'delete', rows: { id: number; v?: string }[]) => Promise<string>;
  /**
   * SIGKILLs and restarts a component ('cacher' or 'query-api'), or kills Redis ('redis': it comes back empty
   * later, while the operations go on); returns what it did.
   */
  kill?: (component: KillTarget) => Promise<string>;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

function text(format: Format, fid: string, seqs: readonly number[], header: boolean): string {
  switch (format) {
    case 'csv':
      return (header ? 'fid,seq,val\n' : '') + seqs.map((q) => `${fid},${q},v${q}\n`).join('');
    case 'tsv':
      return (header ? 'fid\tseq\tval\n' : '') + seqs.map((q) => `${fid}\t${q}\tv${q}\n`).join('');
    case 'ndjson':
    case 'jsonl':
      return seqs.map((q) => `${JSON.stringify({ fid, seq: q, val: `v${q}` })}\n`).join('');
    case 'json':
      return JSON.stringify(seqs.map((q) => ({ fid, seq: q, val: `v${q}` })));
    case 'parquet':
      throw new Error('parquet is written with DuckDB');
  }
}

/**
 * The seeded file workload. Every decision comes from the PRNG and the workload's own state (never from the
 * clock or the system under test), so one seed always gives the same operations in the same order; only
 * their timing differs. Every operation is recorded in the model with its start and end time.
 */
export class Workload {
  private readonly files = new Map<string, FileRec>();
  private nextFid = 1;
  private nextName = 1;
  readonly log: OpRecord[] = [];
  readonly counts: Record<string, number> = {};

  constructor(
    private readonly dataDir: string,
    private readonly rng: Prng,
    private readonly model: Model,
    private readonly duck: DuckDBConnection,
    private readonly hooks: WorkloadHooks,
    private readonly options: { writes: boolean; killAt: ReadonlyMap<number, KillTarget> },
    private readonly now: () => number = Date.now,
  ) {}

  private abs(rel: string): string {
    return path.join(this.dataDir, ...rel.split('/'));
  }

  private record(index: number, kind: string, detail: string, begin: number, end: number): OpRecord {
    const r = { index, kind, detail, begin, end };
    this.log.push(r);
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    return r;
  }

  private inTable(table: string, f: (r: FileRec) => boolean = () => true): FileRec[] {
    return [...this.files.values()].filter((r) => r.table === table && !r.hidden && f(r));
  }

  private idle(f: (r: FileRec) => boolean = () => true): FileRec[] {
    return [...this.files.values()].filter((r) => !r.hidden && r.slowChunks === 0 && f(r));
  }

  /** A visible path for a new name of a file of `format` in `table`. */
  private newPath(table: string, format: Format, fid: string): string {
    const top = `${table}.${format}`;
    const r = this.rng.next();
    if (r < 0.06 && ![...this.files.values()].some((f) => f.path === top)) return top;
    const dir = r < 0.3 ? `${table}/sub` : table;
    return `${dir}/${fid}-${this.nextName++}.${format}`;
  }

  private state(f: FileRec) {
    return { table: f.hidden ? null : f.table, path: f.path, n: f.bad ? 0 : f.seqs.length, s: f.bad ? 0 : sum(f.seqs), bad: f.bad };
  }

  /** Writes `f`'s whole content under a hidden temp name in the target folder, then renames it to `f.path`. */
  private async writeWhole(f: FileRec): Promise<void> {
    const target = this.abs(f.path);
    await mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${this.nextName++}.tmp`);
    if (f.bad) await writeFile(tmp, this.badContent(f));
    else if (f.format === 'parquet') {
      const values = f.seqs.map((q) => `('${f.fid}', ${q}::INTEGER, 'v${q}')`).join(', ');
      await this.duck.run(`COPY (SELECT * FROM (VALUES ${values}) t(fid, seq, val)) TO '${tmp.replace(/'/g, "''")}' (FORMAT parquet)`);
    } else await writeFile(tmp, text(f.format, f.fid, f.seqs, true));
    await rename(tmp, target);
  }

  /** Bytes no reader can take: a Parquet file without a valid footer, a JSON array cut off, a ragged CSV. */
  private badContent(f: FileRec): string {
    if (f.format === 'parquet') return `PAR1 this is not a parquet file (${f.fid}) PAR1`;
    if (f.format === 'json') return `${text('json', f.fid, [1, 2, 3], true).slice(0, -1)},`;
    return `fid,seq,val\n${f.fid},1,v1\n${f.fid},2\n`;
  }

  private async appendRows(f: FileRec, seqs: number[]): Promise<void> {
    // One write() of a few hundred bytes: a reader sees all of it or none of it.
    const fh = await open(this.abs(f.path), 'a');
    try {
      await fh.write(text(f.format, f.fid, seqs, false));
    } finally {
      await fh.close();
    }
    f.seqs = [...f.seqs, ...seqs];
  }

  /** The files every table starts with (before the stack starts). */
  async seed(): Promise<void> {
    const t = this.now();
    // Every format from the start: alpha gets csv, tsv and parquet files, beta json, ndjson and jsonl.
    for (const [i, table] of CHURN_TABLES.entries()) {
      for (const format of FORMATS.slice(i * 3, i * 3 + 3)) {
        const f = this.newFile(table, format, false);
        await this.writeWhole(f);
        this.model.set(f.fid, this.state(f), 0, t, this.now());
      }
    }
  }

  private newFile(table: string, format: Format, bad: boolean): FileRec {
    const fid = `f${this.nextFid++}`;
    const n = this.rng.int(1, 6);
    const f: FileRec = { fid, table, path: '', format, seqs: range(this.rng.int(1, 40) * 100 + 1, n), bad, hidden: false, slowChunks: 0 };
    f.path = this.newPath(table, format, fid);
    this.files.set(fid, f);
    return f;
  }

  /** Chooses and runs operation `index`. */
  async step(index: number): Promise<OpRecord> {
    const kill = this.options.killAt.get(index);
    if (kill && this.hooks.kill) {
      const begin = this.now();
      const what = await this.hooks.kill(kill);
      return this.record(index, `kill-${kill}`, what, begin, this.now());
    }
    const rng = this.rng;
    const counts = Object.fromEntries(CHURN_TABLES.map((t) => [t, this.inTable(t).length]));
    const slow = [...this.files.values()].find((f) => f.slowChunks > 0);
    const appendable = this.idle((f) => !f.bad && APPENDABLE.includes(f.format));
    const readable = this.idle((f) => !f.bad);
    const movable = this.idle();
    const hidden = [...this.files.values()].filter((f) => f.hidden);
    const bad = [...this.files.values()].filter((f) => f.bad);
    const kind = rng.weighted<string>([
      ['create', CHURN_TABLES.some((t) => counts[t]! < 8) ? 3 : 0.5],
      ['append', appendable.length ? 3 : 0],
      ['rewrite', readable.length ? 2 : 0],
      ['rename', movable.length ? 2 : 0],
      ['move', movable.length ? 1.5 : 0],
      ['delete', movable.length > 4 ? 1.5 : movable.length ? 0.3 : 0],
      ['hide', readable.length > 3 ? 0.6 : 0],
      ['unhide', hidden.length ? 1.2 : 0],
      ['slow', slow ? 0 : 0.8],
      ['slow-append', slow ? 4 : 0],
      ['storm', movable.length ? 1 : 0],
      ['unreadable', bad.length < 3 ? 0.5 : 0],
      ['upsert', this.options.writes ? 3 : 0],
      ['write-delete', this.options.writes ? 1.2 : 0],
    ]);
    const begin = this.now();
    switch (kind) {
      case 'create': {
        const roomy = CHURN_TABLES.filter((t) => counts[t]! < 12);
        const table = rng.pick(roomy.length ? roomy : CHURN_TABLES);
        const f = this.newFile(table, rng.pick(FORMATS), false);
        await this.writeWhole(f);
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${f.path} n=${f.seqs.length}`, begin, this.now());
      }
      case 'append': {
        const f = rng.pick(appendable);
        const seqs = range(Math.max(...f.seqs) + 1, rng.int(1, 3));
        await this.appendRows(f, seqs);
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${f.path} +${seqs.length} rows → n=${f.seqs.length}`, begin, this.now());
      }
      case 'rewrite': {
        const f = rng.pick(readable);
        let base = rng.int(1, 40) * 100 + 1;
        if (base === f.seqs[0]) base += 100;
        f.seqs = range(base, rng.int(1, 6));
        await this.writeWhole(f);
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${f.path} replaced by rename → n=${f.seqs.length}`, begin, this.now());
      }
      case 'rename':
      case 'move': {
        const f = rng.pick(movable);
        const from = f.path;
        if (kind === 'move') f.table = CHURN_TABLES.find((t) => t !== f.table)!;
        f.path = this.newPath(f.table, f.format, f.fid);
        await mkdir(path.dirname(this.abs(f.path)), { recursive: true });
        await rename(this.abs(from), this.abs(f.path));
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${from} → ${f.path}`, begin, this.now());
      }
      case 'delete': {
        const f = rng.pick(movable);
        await rm(this.abs(f.path));
        this.files.delete(f.fid);
        this.model.set(f.fid, null, index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${f.path}`, begin, this.now());
      }
      case 'hide': {
        const f = rng.pick(readable);
        const from = f.path;
        f.path = `${path.posix.dirname(from) === '.' ? '' : `${path.posix.dirname(from)}/`}.${path.posix.basename(from)}.hidden`;
        f.hidden = true;
        await rename(this.abs(from), this.abs(f.path));
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${from} → ${f.path}`, begin, this.now());
      }
      case 'unhide': {
        const f = rng.pick(hidden);
        const from = f.path;
        f.path = this.newPath(f.table, f.format, f.fid);
        f.hidden = false;
        await mkdir(path.dirname(this.abs(f.path)), { recursive: true });
        await rename(this.abs(from), this.abs(f.path));
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${from} → ${f.path}`, begin, this.now());
      }
      case 'slow': {
        // Written in place at its final name, a chunk at a time over the next operations: every chunk
        // boundary is a state the file really has, and each may show once it has settled.
        const f = this.newFile(rng.pick(CHURN_TABLES), rng.pick(APPENDABLE), false);
        f.seqs = f.seqs.slice(0, rng.int(1, 2));
        f.slowChunks = rng.int(2, 5);
        await mkdir(path.dirname(this.abs(f.path)), { recursive: true });
        const fh = await open(this.abs(f.path), 'wx');
        try {
          await fh.write(text(f.format, f.fid, f.seqs, true));
        } finally {
          await fh.close();
        }
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${f.path} first chunk n=${f.seqs.length}, ${f.slowChunks} more to come`, begin, this.now());
      }
      case 'slow-append':
        return await this.slowAppend(index, slow!);
      case 'storm': {
        // Renames back and forth as fast as the file system takes them, within one table, for a few hundred
        // ms: the rows never leave the table, and a scan that lists the folder mid-storm must not lose them.
        // It always ends under the new name (the count is made odd), so the seed alone decides the outcome.
        const f = rng.pick(movable);
        const a = f.path;
        const b = this.newPath(f.table, f.format, f.fid);
        const ms = rng.int(150, 600);
        await mkdir(path.dirname(this.abs(b)), { recursive: true });
        let times = 0;
        while (this.now() - begin < ms || times % 2 === 0) {
          await rename(this.abs(times % 2 === 0 ? a : b), this.abs(times % 2 === 0 ? b : a));
          times += 1;
        }
        f.path = b;
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} renamed ${times}× in ${ms} ms between ${a} and ${b}, now ${b}`, begin, this.now());
      }
      case 'unreadable': {
        const f = this.newFile(rng.pick(CHURN_TABLES), rng.pick(['parquet', 'json', 'csv'] as const), true);
        await this.writeWhole(f);
        this.model.set(f.fid, this.state(f), index, begin, this.now());
        return this.record(index, kind, `${f.fid} ${f.path} (${f.format}, cannot be read)`, begin, this.now());
      }
      case 'upsert':
      case 'write-delete': {
        const op = kind === 'upsert' ? 'upsert' : 'delete';
        const ids = [...new Set(Array.from({ length: rng.int(1, 3) }, () => rng.int(1, WRITES_KEYS)))];
        const rows = ids.map((id, j) => (op === 'upsert' ? { id, v: `w${index}-${j}` } : { id }));
        const what = this.hooks.sendWrite ? await this.hooks.sendWrite(op, rows) : 'no writer';
        return this.record(index, kind, `${WRITES_TABLE} ${op} ${JSON.stringify(rows)}: ${what}`, begin, this.now());
      }
      default:
        throw new Error(`unknown operation ${kind}`);
    }
  }

  private async slowAppend(index: number, f: FileRec): Promise<OpRecord> {
    const begin = this.now();
    const seqs = range(Math.max(...f.seqs) + 1, this.rng.int(1, 3));
    await this.appendRows(f, seqs);
    f.slowChunks -= 1;
    this.model.set(f.fid, this.state(f), index, begin, this.now());
    return this.record(index, 'slow-append', `${f.fid} ${f.path} +${seqs.length} rows → n=${f.seqs.length}${f.slowChunks ? `, ${f.slowChunks} more` : ', complete'}`, begin, this.now());
  }

  /** Finishes a file still being written slowly (after the last operation), as further operations. */
  async finish(nextIndex: number): Promise<OpRecord[]> {
    const out: OpRecord[] = [];
    for (const f of this.files.values()) while (f.slowChunks > 0) out.push(await this.slowAppend(nextIndex++, f));
    return out;
  }
}
