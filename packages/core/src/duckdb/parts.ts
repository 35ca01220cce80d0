import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Keys } from '../keys.js';
import type { PartRef, SnapshotFormat, TablePart } from '../messages.js';
import { fetchPart } from '../parts.js';
import type { RedisClient } from '../redis.js';
import { quoteIdent, quoteLiteral } from '../sql.js';
import { loadArrowStream, encodeArrowStream } from './arrow.js';
import { closeDuckDB, openDuckDB, type DuckDBOptions } from './engine.js';
import type { DuckDBConnection } from '@duckdb/node-api';

/** Column of a merged part numbering each row's member file (0 … members-1). */
export const MEMBER_COLUMN = '__fd_member';

/** A column of a part or a table. */
export interface PartColumn {
  readonly name: string;
  readonly type: string;
}

/** The columns a part's bytes hold: its own, plus the member number when it merges several files. */
export function storedColumns(part: Pick<PartRef, 'columns' | 'members'>): PartColumn[] {
  return part.members > 1 ? [...part.columns, { name: MEMBER_COLUMN, type: 'INTEGER' }] : [...part.columns];
}

/**
 * JSON numbers are read back as doubles: numbers a double cannot hold exactly (DECIMAL wider than
 * 15 digits, 128-bit integers) travel as strings and are cast back when decoded.
 */
function jsonSafeSelect(source: string, columns: readonly PartColumn[]): string {
  const exact = (t: string) => /^(HUGEINT|UHUGEINT)$/.test(t) || Number(/^DECIMAL\((\d+),/.exec(t)?.[1] ?? 0) > 15;
  const list = columns.map((c) => (exact(c.type) ? `CAST(${quoteIdent(c.name)} AS VARCHAR) AS ${quoteIdent(c.name)}` : quoteIdent(c.name)));
  return `SELECT ${list.join(', ')} FROM ${source}`;
}

const castList = (columns: readonly PartColumn[]) => columns.map((c) => `CAST(${quoteIdent(c.name)} AS ${c.type}) AS ${quoteIdent(c.name)}`).join(', ');

/**
 * Encodes a part's Parquet file (`source`) as `format` into `out`. Parquet needs no step (the caller stores the
 * source itself). `conn` is a scratch DuckDB connection.
 */
export async function encodePart(conn: DuckDBConnection, source: string, format: Exclude<SnapshotFormat, 'parquet'>, out: string, columns: readonly PartColumn[]): Promise<void> {
  const from = `read_parquet(${quoteLiteral(source)})`;
  switch (format) {
    case 'json':
      await conn.run(`COPY (${jsonSafeSelect(from, columns)}) TO ${quoteLiteral(out)} (FORMAT json)`);
      return;
    case 'arrow': {
      const result = await conn.stream(`SELECT * FROM ${from}`);
      await writeFile(out, (await encodeArrowStream(result)).bytes);
      return;
    }
    case 'duckdb': {
      const alias = `enc_${randomBytes(4).toString('hex')}`;
      await conn.run(`ATTACH ${quoteLiteral(out)} AS ${alias}`);
      try {
        await conn.run(`CREATE TABLE ${alias}.main.part AS SELECT * FROM ${from}`);
      } finally {
        await conn.run(`DETACH ${alias}`);
      }
    }
  }
}

/** Turns a part's stored bytes (`source`, in `format`) into a Parquet file `out`, column types as stored. */
export async function decodePart(conn: DuckDBConnection, source: string, format: Exclude<SnapshotFormat, 'parquet'>, out: string, columns: readonly PartColumn[]): Promise<void> {
  const to = `TO ${quoteLiteral(out)} (FORMAT parquet, COMPRESSION snappy)`;
  switch (format) {
    case 'json': {
      if (columns.length === 0) throw new Error('a part without columns cannot be decoded');
      const spec = columns.map((c) => `${quoteLiteral(c.name)}: ${quoteLiteral(c.type)}`).join(', ');
      await conn.run(`COPY (SELECT ${castList(columns)} FROM read_json(${quoteLiteral(source)}, format='newline_delimited', columns={${spec}})) ${to}`);
      return;
    }
    case 'arrow': {
      const table = `dec_${randomBytes(4).toString('hex')}`;
      await loadArrowStream(conn, await readFile(source), { table }, new Map(columns.map((c) => [c.name, c.type])));
      try {
        await conn.run(`COPY ${table} ${to}`);
      } finally {
        await conn.run(`DROP TABLE IF EXISTS ${table}`);
      }
      return;
    }
    case 'duckdb': {
      const alias = `dec_${randomBytes(4).toString('hex')}`;
      await conn.run(`ATTACH ${quoteLiteral(source)} AS ${alias} (READ_ONLY)`);
      try {
        await conn.run(`COPY (SELECT * FROM ${alias}.main.part) ${to}`);
      } finally {
        await conn.run(`DETACH ${alias}`);
      }
    }
  }
}

/**
 * The SELECT that serves a table version from its parts' local Parquet files: each part's columns cast to the
 * table's types (a column a part lacks as NULL), members the version excludes filtered out. Parts with the same
 * columns and nothing excluded are read by one `read_parquet([...])`, which scans them in parallel.
 * Null when the version has no parts or no columns.
 */
export function partsSelectSql(parts: readonly TablePart[], columns: readonly PartColumn[], fileOf: (part: TablePart) => string): string | null {
  if (parts.length === 0 || columns.length === 0) return null;
  const groups = new Map<string, TablePart[]>();
  const single: TablePart[] = [];
  for (const p of parts) {
    if (p.exclude?.length) {
      single.push(p);
      continue;
    }
    const sig = JSON.stringify([p.members > 1, p.columns.map((c) => [c.name, c.type])]);
    groups.set(sig, [...(groups.get(sig) ?? []), p]);
  }
  const selectFrom = (group: readonly TablePart[]) => {
    const have = new Map(group[0]!.columns.map((c) => [c.name.toLowerCase(), c]));
    const list = columns.map((col) => {
      const own = have.get(col.name.toLowerCase());
      if (own === undefined) return `CAST(NULL AS ${col.type}) AS ${quoteIdent(col.name)}`;
      if (own.type === col.type && own.name === col.name) return quoteIdent(col.name);
      return `CAST(${quoteIdent(own.name)} AS ${col.type}) AS ${quoteIdent(col.name)}`;
    });
    const files = group.map((p) => quoteLiteral(fileOf(p)));
    const from = files.length === 1 ? `read_parquet(${files[0]!})` : `read_parquet([${files.join(', ')}])`;
    const excluded = group.length === 1 ? group[0]!.exclude ?? [] : [];
    const where = excluded.length ? ` WHERE ${quoteIdent(MEMBER_COLUMN)} NOT IN (${excluded.join(', ')})` : '';
    return `SELECT ${list.join(', ')} FROM ${from}${where}`;
  };
  return [...[...groups.values()].map(selectFrom), ...single.map((p) => selectFrom([p]))].join('\nUNION ALL\n');
}

/**
 * Parts on local disk, fetched from Redis once and kept while wanted: a new table version reuses the parts it
 * shares with the one before without fetching or copying them. Every part is a Parquet file named after its id
 * (other encodings are decoded once, on arrival). Fetches of one part are shared.
 */
export class PartCache {
  private readonly inflight = new Map<string, Promise<{ file: string; fetched: number }>>();
  /** Bytes fetched from Redis since the cache was made. */
  fetchedBytes = 0;
  fetchedParts = 0;
  reusedParts = 0;

  constructor(private readonly o: { redis: RedisClient; keys: Keys; dir: string; duckdb?: DuckDBOptions }) {}

  get dir(): string {
    return this.o.dir;
  }

  fileOf(part: Pick<PartRef, 'id'>): string {
    return path.join(this.o.dir, `${part.id}.parquet`);
  }

  /** The local Parquet file of a part, fetched (and decoded) first when it is not here. */
  ensure(part: PartRef): Promise<{ file: string; fetched: number }> {
    const running = this.inflight.get(part.id);
    if (running) return running;
    const p = this.ensureOnce(part).finally(() => this.inflight.delete(part.id));
    this.inflight.set(part.id, p);
    return p;
  }

  private async ensureOnce(part: PartRef): Promise<{ file: string; fetched: number }> {
    const file = this.fileOf(part);
    try {
      await stat(file);
      this.reusedParts += 1;
      return { file, fetched: 0 };
    } catch {
      /* not here yet */
    }
    await mkdir(this.o.dir, { recursive: true });
    const tmp = path.join(this.o.dir, `.fetch-${part.id}-${randomBytes(4).toString('hex')}`);
    try {
      const fetched = await fetchPart(this.o.redis, this.o.keys, part, tmp);
      if (part.format !== 'parquet') {
        const decoded = `${tmp}.parquet`;
        const db = await openDuckDB({ threads: 1, ...this.o.duckdb });
        try {
          await decodePart(db.conn, tmp, part.format, decoded, storedColumns(part));
        } finally {
          closeDuckDB(db);
        }
        await rename(decoded, tmp);
      }
      await rename(tmp, file);
      this.fetchedBytes += fetched;
      this.fetchedParts += 1;
      return { file, fetched };
    } finally {
      await rm(tmp, { force: true });
      await rm(`${tmp}.parquet`, { force: true });
    }
  }

  /** Takes a local Parquet file of a part just stored (moved in: the bytes need no fetch). */
  async adopt(part: Pick<PartRef, 'id'>, file: string): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    await rename(file, this.fileOf(part));
  }

  /** Deletes every local part not in `keep` (and leftovers of interrupted fetches not running now). */
  async retain(keep: ReadonlySet<string>): Promise<number> {
    let entries: string[] = [];
    try {
      entries = await readdir(this.o.dir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const e of entries) {
      const id = /^([0-9a-f]+)\.parquet$/.exec(e)?.[1] ?? /^\.fetch-([0-9a-f]+)-/.exec(e)?.[1];
      if (id === undefined || keep.has(id) || this.inflight.has(id)) continue;
      await rm(path.join(this.o.dir, e), { force: true }).catch(() => undefined);
      removed += 1;
    }
    return removed;
  }
}
