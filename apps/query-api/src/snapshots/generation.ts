import type { DuckDBConnection } from '@duckdb/node-api';
import { AppError, quoteIdent, type TableMeta } from '@flashduck/core';
import { attachParts, closeDuckDB, openDuckDB, type DuckDBHandle } from '@flashduck/core/duckdb';

/** A table as one generation serves it. */
export interface ServedTable {
  readonly meta: TableMeta;
  /** The SELECT over the attached parts that serves the table, or null when it has no columns to serve. */
  readonly select: string | null;
  /** Local part files the table reads, by part id. */
  readonly files: ReadonlyMap<string, string>;
}

/** The catalog served tables live in (DuckDB's in-memory database). */
export const SERVED_CATALOG = 'memory';

/**
 * One set of table versions, served by its own DuckDB instance: every part's local file attached READ_ONLY
 * (a new generation reuses unchanged parts without copying them), every table a view over its parts, then
 * external access disabled and configuration locked. User SQL can read those tables and
 * nothing else. A query holds the generation (reference count) so a swap never breaks it; the instance
 * closes when the last query on a retired generation ends.
 */
export class Generation {
  private refs = 0;
  private retired = false;
  private closed = false;
  private readonly idle: DuckDBConnection[];
  private readonly waiters: { resolve: (conn: DuckDBConnection) => void; cancelled: boolean }[] = [];

  private constructor(
    readonly id: number,
    readonly tables: ReadonlyMap<string, ServedTable>,
    private readonly db: DuckDBHandle,
    connections: DuckDBConnection[],
  ) {
    this.idle = connections;
  }

  static async create(
    id: number,
    tables: ReadonlyMap<string, ServedTable>,
    options: { connections: number; memoryLimitMb?: number | undefined; threads?: number | undefined },
  ): Promise<Generation> {
    const db = await openDuckDB({ memoryLimitMb: options.memoryLimitMb, threads: options.threads });
    try {
      const connections: DuckDBConnection[] = [];
      for (let i = 0; i < options.connections; i++) {
        const conn = await db.instance.connect();
        await conn.run(`SET TimeZone='UTC'`);
        connections.push(conn);
      }
      const files = new Map<string, string>();
      for (const t of tables.values()) for (const [id, file] of t.files) files.set(id, file);
      // The query connections help attach the parts (four at a time): a swap waits for this.
      await attachParts([db.conn, ...connections.slice(0, 3)], files);
      for (const [name, t] of tables) {
        if (t.select) await db.conn.run(`CREATE VIEW ${SERVED_CATALOG}.main.${quoteIdent(name)} AS ${t.select}`);
      }
      await db.conn.run('SET enable_external_access=false');
      await db.conn.run('SET lock_configuration=true');
      return new Generation(id, tables, db, connections);
    } catch (err) {
      closeDuckDB(db);
      throw err;
    }
  }

  private extras: Promise<void> | null = null;

  /**
   * Runs setup statements once for this generation (the PostgreSQL catalog look-alike a PostgreSQL client
   * needs), on its own connection; later callers wait for the same run.
   */
  setupOnce(statements: (tables: ReadonlyMap<string, ServedTable>) => string[]): Promise<void> {
    this.extras ??= (async () => {
      for (const sql of statements(this.tables)) await this.db.conn.run(sql);
    })();
    return this.extras;
  }

  /** Versions of the served tables. */
  versions(): Map<string, number> {
    return new Map([...this.tables].map(([n, t]) => [n, t.meta.version]));
  }

  /** When the served version of a table was published (with its version, it names one build). */
  publishedAt(table: string): number | undefined {
    return this.tables.get(table)?.meta.updatedAt;
  }

  /**
   * Pins the generation for one query and hands out a connection, waiting while all are busy:
   * at most `maxQueued` queries wait (then 503), and none past `deadlineAt` (then 408).
   */
  async acquire(maxQueued: number, deadlineAt: number): Promise<{ conn: DuckDBConnection; release: () => void }> {
    if (this.closed) throw new Error(`generation ${this.id} is closed: a caller held it across an await without pinning it`);
    this.refs += 1;
    let conn = this.idle.pop();
    if (!conn) {
      if (this.waiters.length >= maxQueued) {
        this.unpin();
        throw new AppError('not_ready', 'the server is busy: too many queries are waiting; retry shortly', { details: { retryAfterSeconds: 1 } });
      }
      try {
        conn = await new Promise<DuckDBConnection>((resolve, reject) => {
          const waiter = { resolve: (c: DuckDBConnection) => { clearTimeout(timer); resolve(c); }, cancelled: false };
          const timer = setTimeout(() => {
            waiter.cancelled = true;
            reject(new AppError('timeout', 'the query deadline passed while waiting for a free connection'));
          }, Math.max(0, deadlineAt - Date.now()));
          this.waiters.push(waiter);
        });
      } catch (err) {
        this.unpin();
        throw err;
      }
    }
    let released = false;
    const held = conn;
    return {
      conn: held,
      release: () => {
        if (released) return;
        released = true;
        let next = this.waiters.shift();
        while (next?.cancelled) next = this.waiters.shift();
        if (next) next.resolve(held);
        else this.idle.push(held);
        this.unpin();
      },
    };
  }

  /** Keeps the generation open across several queries (until the returned function is called). */
  pin(): () => void {
    if (this.closed) throw new Error(`generation ${this.id} is closed`);
    this.refs += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.unpin();
    };
  }

  private unpin(): void {
    this.refs -= 1;
    this.maybeClose();
  }

  /** Queries waiting for a connection. */
  get queued(): number {
    return this.waiters.filter((w) => !w.cancelled).length;
  }

  /** No new queries; closes when the running ones end. */
  retire(): void {
    this.retired = true;
    this.maybeClose();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private maybeClose(): void {
    if (!this.retired || this.refs > 0 || this.closed) return;
    this.closed = true;
    for (const c of this.idle) c.closeSync();
    closeDuckDB(this.db);
    this.onClose?.();
  }

  /** Called once when the instance has closed. */
  onClose: (() => void) | undefined;
}
