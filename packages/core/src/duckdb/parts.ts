import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Keys } from '../keys.js';
import type { PartRef, SnapshotFormat, TablePart } from '../messages.js';
import { fetchPart } from '../parts.js';
import type { RedisClient } from '../redis.js';
import { quoteIdent, quoteLiteral } from '../sql.js';
import { loadArrowStream, encodeArrowStream } from './arrow.js';
import { closeDuckDB, openDuckDB, type DuckDBOptions } from './engine.js';

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

/** The catalog alias a part's local DuckDB file is attached under. */
export const partAlias = (part: Pick<PartRef, 'id'>) => `p_${part.id}`;
/** The table of a part, once its file is attached under {@link partAlias}. */
export const partRelation = (part: Pick<PartRef, 'id'>) => `${quoteIdent(partAlias(part))}.main.part`;

/**
 * Attaches local part files read-only, each once, under {@link partAlias}. Opening a part file costs ~2 ms (its
 * header and catalog are read); several connections of one instance attach side by side, which halves the time
 * on two cores (attached databases belong to the instance, so every connection sees them all).
 */
export async function attachParts(conns: readonly DuckDBConnection[], files: ReadonlyMap<string, string>): Promise<void> {
  const entries = [...files];
  const attached = await Promise.allSettled(
    conns.map(async (conn, k) => {
      for (let i = k; i < entries.length; i += conns.length) {
        const [id, file] = entries[i]!;
        await conn.run(`ATTACH ${quoteLiteral(file)} AS ${quoteIdent(partAlias({ id }))} (READ_ONLY)`);
      }
    }),
  );
  // Every connection has stopped before a failure is reported (the caller then closes the instance).
  const failed = attached.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
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
 * A DuckDB file smaller than this is stored gzip-compressed (level 1): an 8-row part's 0.5 MB file becomes 4 KB.
 * A bigger one is stored as it is: its blocks are full, gzip would save about a quarter at 22 ms per MB on the
 * path to fresh data (and cost replicas the inflating).
 */
export const GZIP_BELOW_BYTES = 2 * 1024 * 1024;

/** gzip, level 1. */
export async function gzipFile(source: string, out: string): Promise<void> {
  await pipeline(createReadStream(source), createGzip({ level: 1 }), createWriteStream(out));
}

async function gunzipFile(source: string, out: string): Promise<void> {
  await pipeline(createReadStream(source), createGunzip(), createWriteStream(out));
}

/**
 * Encodes a local part file (a DuckDB database with table `part`) as `format` into `out`, the bytes stored in
 * Redis (a `duckdb` part is the file itself: see {@link GZIP_BELOW_BYTES}). `conn` is a scratch DuckDB connection.
 */
export async function encodePart(conn: DuckDBConnection, source: string, format: Exclude<SnapshotFormat, 'duckdb'>, out: string, columns: readonly PartColumn[]): Promise<void> {
  const alias = `enc_${randomBytes(4).toString('hex')}`;
  await conn.run(`ATTACH ${quoteLiteral(source)} AS ${alias} (READ_ONLY)`);
  const from = `${alias}.main.part`;
  try {
    switch (format) {
      case 'parquet':
        await conn.run(`COPY ${from} TO ${quoteLiteral(out)} (FORMAT parquet, COMPRESSION zstd)`);
        return;
      case 'json':
        await conn.run(`COPY (${jsonSafeSelect(from, columns)}) TO ${quoteLiteral(out)} (FORMAT json)`);
        return;
      case 'arrow': {
        const result = await conn.stream(`SELECT * FROM ${from}`);
        await writeFile(out, (await encodeArrowStream(result)).bytes);
      }
    }
  } finally {
    await conn.run(`DETACH ${alias}`);
  }
}

/** Turns a part's stored bytes (`source`, in `format`) into a local part file `out` (a DuckDB database, table `part`). */
export async function decodePart(conn: DuckDBConnection, source: string, format: Exclude<SnapshotFormat, 'duckdb'>, out: string, columns: readonly PartColumn[]): Promise<void> {
  const alias = `dec_${randomBytes(4).toString('hex')}`;
  await rm(out, { force: true });
  await conn.run(`ATTACH ${quoteLiteral(out)} AS ${alias}`);
  const target = `${alias}.main.part`;
  try {
    switch (format) {
      case 'parquet':
        await conn.run(`CREATE TABLE ${target} AS SELECT * FROM read_parquet(${quoteLiteral(source)})`);
        return;
      case 'json': {
        if (columns.length === 0) throw new Error('a part without columns cannot be decoded');
        const spec = columns.map((c) => `${quoteLiteral(c.name)}: ${quoteLiteral(c.type)}`).join(', ');
        await conn.run(`CREATE TABLE ${target} AS SELECT ${castList(columns)} FROM read_json(${quoteLiteral(source)}, format='newline_delimited', columns={${spec}})`);
        return;
      }
      case 'arrow':
        await loadArrowStream(conn, await readFile(source), { catalog: alias, table: 'part' }, new Map(columns.map((c) => [c.name, c.type])));
    }
  } finally {
    await conn.run(`DETACH ${alias}`);
  }
}

/** A part as a SELECT reads it: a version's (members it excludes left out), or only the members in `include`. */
export type SelectedPart = TablePart & { readonly include?: readonly number[] };

/**
 * The SELECT that serves a table version from its parts: each part's columns cast to the table's types (a
 * column a part lacks as NULL), members the version excludes filtered out (or only those a part includes).
 * `relationOf` names a part's table (by default its attached file, {@link partRelation}). Null when the
 * version has no parts or no columns.
 */
export function partsSelectSql(parts: readonly SelectedPart[], columns: readonly PartColumn[], relationOf: (part: TablePart) => string = partRelation): string | null {
  if (parts.length === 0 || columns.length === 0) return null;
  return parts
    .map((p) => {
      const have = new Map(p.columns.map((c) => [c.name.toLowerCase(), c]));
      const list = columns.map((col) => {
        const own = have.get(col.name.toLowerCase());
        if (own === undefined) return `CAST(NULL AS ${col.type}) AS ${quoteIdent(col.name)}`;
        if (own.type === col.type && own.name === col.name) return quoteIdent(col.name);
        return `CAST(${quoteIdent(own.name)} AS ${col.type}) AS ${quoteIdent(col.name)}`;
      });
      const where = p.include
        ? ` WHERE ${quoteIdent(MEMBER_COLUMN)} IN (${p.include.join(', ')})`
        : p.exclude?.length
          ? ` WHERE ${quoteIdent(MEMBER_COLUMN)} NOT IN (${p.exclude.join(', ')})`
          : '';
      return `SELECT ${list.join(', ')} FROM ${relationOf(p)}${where}`;
    })
    .join('\nUNION ALL\n');
}

/**
 * Parts on local disk, fetched from Redis once and kept while wanted: a new table version reuses the parts it
 * shares with the one before without fetching or copying them. Every part is a DuckDB database file named after
 * its id (table `part`), attached read-only where it is used; other encodings are decoded once, on arrival.
 * Fetches of one part are shared.
 */
export class PartCache {
  private readonly inflight = new Map<string, Promise<{ file: string; fetched: number }>>();
  /** Bytes fetched from Redis since the cache was made. */
  fetchedBytes = 0;

  constructor(
    private readonly o: {
      redis: RedisClient;
      keys: Keys;
      dir: string;
      duckdb?: DuckDBOptions;
      /** Called once per part fetched from Redis, with its stored bytes. */
      onFetch?: (part: PartRef, bytes: number) => void;
    },
  ) {}

  get dir(): string {
    return this.o.dir;
  }

  fileOf(part: Pick<PartRef, 'id'>): string {
    return path.join(this.o.dir, `${part.id}.duckdb`);
  }

  /** The local file of a part, fetched (and decoded) first when it is not here. */
  ensure(part: PartRef): Promise<{ file: string; fetched: number }> {
    const running = this.inflight.get(part.id);
    if (running) return running;
    const p = this.ensureOnce(part).finally(() => this.inflight.delete(part.id));
    this.inflight.set(part.id, p);
    return p;
  }

  /**
   * `ensure` for several parts, `parallelism` fetches at a time; the results in the order of `parts`. Once `stop`
   * says so, no further fetch begins (the parts not begun have no result).
   */
  async ensureAll(parts: readonly PartRef[], parallelism = 4, stop: () => boolean = () => false): Promise<{ file: string; fetched: number }[]> {
    const out = new Array<{ file: string; fetched: number }>(parts.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(parallelism, parts.length) }, async () => {
        while (next < parts.length && !stop()) {
          const i = next++;
          out[i] = await this.ensure(parts[i]!);
        }
      }),
    );
    return out;
  }

  private async ensureOnce(part: PartRef): Promise<{ file: string; fetched: number }> {
    const file = this.fileOf(part);
    try {
      await stat(file);
      return { file, fetched: 0 };
    } catch {
      /* not here yet */
    }
    await mkdir(this.o.dir, { recursive: true });
    const tmp = path.join(this.o.dir, `.fetch-${part.id}-${randomBytes(4).toString('hex')}`);
    try {
      const fetched = await fetchPart(this.o.redis, this.o.keys, part, tmp);
      if (part.compression === 'gzip') {
        await gunzipFile(tmp, `${tmp}.gunzip`);
        await rename(`${tmp}.gunzip`, tmp);
      }
      if (part.format === 'duckdb') {
        await rename(tmp, `${tmp}.db`);
      } else {
        const db = await openDuckDB({ threads: 1, ...this.o.duckdb });
        try {
          await decodePart(db.conn, tmp, part.format, `${tmp}.db`, storedColumns(part));
        } finally {
          closeDuckDB(db);
        }
      }
      await rename(`${tmp}.db`, file);
      this.fetchedBytes += fetched;
      this.o.onFetch?.(part, fetched);
      return { file, fetched };
    } finally {
      await rm(tmp, { force: true });
      await rm(`${tmp}.gunzip`, { force: true });
      await rm(`${tmp}.db`, { force: true });
      await rm(`${tmp}.db.wal`, { force: true });
    }
  }

  /** Takes a local part file just stored (moved in: the bytes need no fetch). */
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
      const id = /^([0-9a-f]+)\.duckdb(\.wal)?$/.exec(e)?.[1] ?? /^\.fetch-([0-9a-f]+)-/.exec(e)?.[1];
      if (id === undefined || keep.has(id) || this.inflight.has(id)) continue;
      await rm(path.join(this.o.dir, e), { force: true }).catch(() => undefined);
      removed += 1;
    }
    return removed;
  }
}
