import type { DuckDBResult, DuckDBType } from '@duckdb/node-api';
import { AppError, counter } from '@flashduck/core';
import { QueryCancelled, describeStatement, withResult, type ParameterValue } from '../query/run-query.js';
import { isCacheable, normalizeSql, resultKey, type ResultCache } from '../query/result-cache.js';
import { versionsRead, type TableReferenceParser } from '../query/table-references.js';
import type { Catalog } from '../snapshots/catalog.js';
import type { Generation, ServedTable } from '../snapshots/generation.js';
import {
  Reader,
  bindComplete,
  closeComplete,
  commandComplete,
  dataRow,
  emptyQueryResponse,
  errorResponse,
  noData,
  parameterDescription,
  parseComplete,
  portalSuspended,
  readyForQuery,
  rowDescription,
} from './messages.js';
import { DEFAULT_SETTINGS, localStatement, splitStatements, type LocalStatement } from './statements.js';
import { answersNothing, catalogSql, pgColumnName, rewriteForPostgresClients } from './catalog.js';
import { OID, binaryParameter, binaryValue, fieldOf, pgColumn, pgColumnOfName, textValue, type PgColumn } from './types.js';

/** Builds the PostgreSQL catalog look-alike for a generation's tables. */
const shimStatements = (tables: ReadonlyMap<string, ServedTable>) =>
  catalogSql(
    new Map(
      [...tables].map(([name, t]) => [
        name,
        {
          meta: t.meta,
          columns: t.meta.columns.map((c) => {
            const col = pgColumnOfName(c.type);
            return { name: c.name, oid: col.oid, len: col.size, typmod: col.modifier };
          }),
        },
      ]),
    ),
  );

const pgQueries = counter('flashduck_query_pg_statements_total', 'Statements run over the PostgreSQL protocol by outcome', ['outcome']);

export interface SessionLimits {
  readonly timeoutMs: number;
  readonly maxQueued: number;
  /** Bytes of rows one statement may send (QUERY_MAX_STREAM_BYTES). */
  readonly maxStreamBytes: number;
}

/** What sessions share with HTTP: the result cache and the parser that finds the tables a statement reads. */
export interface SharedAnswers {
  readonly cache: ResultCache;
  readonly references: TableReferenceParser;
  readonly maxEntryBytes: number;
}

/** A statement prepared by Parse. */
interface Prepared {
  readonly sql: string;
  readonly local: LocalStatement | null;
  /** Parameter type OIDs: the client's where it gave them, else DuckDB's. */
  readonly paramOids: number[];
  readonly columns: { name: string; col: PgColumn }[] | null;
}

/** A statement bound to parameter values by Bind. */
interface Portal {
  readonly statement: Prepared;
  readonly params: ParameterValue[];
  readonly formats: (0 | 1)[];
  /** Rows produced but not sent yet (an Execute with a row limit), and the count sent so far. */
  pending?: Buffer[];
  sent?: number;
}

/** An error with the SQLSTATE a PostgreSQL client expects. */
export class PgError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** The SQLSTATE of an error from the query path. */
export function toPgError(err: unknown): PgError {
  if (err instanceof PgError) return err;
  if (err instanceof QueryCancelled) return new PgError('57014', err.message);
  if (err instanceof AppError) {
    const m = err.message;
    switch (err.code) {
      case 'refused_statement':
        return new PgError('25006', m);
      case 'timeout':
        return new PgError('57014', m);
      case 'too_large':
        return new PgError('54000', m);
      case 'not_ready':
        return new PgError('57P03', m);
      case 'unauthorized':
      case 'forbidden':
        return new PgError('28P01', m);
      case 'bad_sql':
        if (/Parser Error/i.test(m)) return new PgError('42601', m);
        if (/Table with name .* does not exist|Table .* does not exist/i.test(m)) return new PgError('42P01', m);
        if (/Referenced column .* not found|column .* (not found|does not exist)/i.test(m)) return new PgError('42703', m);
        if (/(Scalar|Table|Aggregate) Function with name .* does not exist|No function matches/i.test(m)) return new PgError('42883', m);
        if (/Conversion Error|Could not convert|Invalid Input Error/i.test(m)) return new PgError('22P02', m);
        if (/Division by zero/i.test(m)) return new PgError('22012', m);
        return new PgError('42000', m);
      default:
        return new PgError('XX000', m);
    }
  }
  return new PgError('XX000', (err as Error)?.message ?? String(err));
}

/** Rows are sent in writes of about this size. */
const WRITE_BATCH_BYTES = 64 * 1024;

/**
 * One client connection's protocol state after authentication: prepared statements, portals, settings and the
 * transaction status it reports. Queries run on the catalog's current generation through the same read-only
 * path, deadline and byte cap as HTTP; `cancel` interrupts the running one inside DuckDB.
 */
export class PgSession {
  readonly settings: Record<string, string> = { ...DEFAULT_SETTINGS };
  private readonly statements = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();
  private status: 'I' | 'T' | 'E' = 'I';
  /** After an error in the extended protocol, messages up to Sync are skipped. */
  private skipping = false;
  private running: AbortController | null = null;
  /** A statement is running (the idle timeout does not close the connection). */
  get busy(): boolean {
    return this.running !== null;
  }

  constructor(
    private readonly catalog: Catalog,
    private readonly limits: SessionLimits,
    private readonly shared: SharedAnswers,
    private readonly send: (bytes: Buffer) => Promise<void>,
  ) {}

  /** Interrupts the running statement (a CancelRequest). */
  cancel(): void {
    this.running?.abort();
  }

  /** Answers one frontend message; the returned bytes end the answer (what was streamed went through `send`). */
  async handle(message: Buffer): Promise<Buffer> {
    const type = String.fromCharCode(message[0]!);
    const body = new Reader(message.subarray(5));
    if (type === 'Q') return await this.simpleQuery(body.cstring());
    if (type === 'S') {
      this.skipping = false;
      // Portals of the finished (implicit) transaction end with it.
      if (this.status !== 'T') this.portals.clear();
      return readyForQuery(this.status);
    }
    if (type === 'H') return Buffer.alloc(0);
    if (this.skipping) return Buffer.alloc(0);
    try {
      switch (type) {
        case 'P':
          return await this.parse(body);
        case 'B':
          return this.bind(body);
        case 'D':
          return this.describe(body);
        case 'E':
          return await this.execute(body);
        case 'C': {
          const kind = String.fromCharCode(body.byte());
          const name = body.cstring();
          if (kind === 'S') this.statements.delete(name);
          else this.portals.delete(name);
          return closeComplete();
        }
        default:
          throw new PgError('0A000', `message type "${type}" is not supported (FlashDuck answers queries: simple and extended protocol, no COPY or function calls)`);
      }
    } catch (err) {
      this.skipping = true;
      if (this.status === 'T') this.status = 'E';
      return this.errorOf(err);
    }
  }

  private errorOf(err: unknown): Buffer {
    const e = toPgError(err);
    pgQueries.inc({ outcome: e.code });
    return errorResponse({ code: e.code, message: e.message, hint: e.hint });
  }

  /**
   * Runs `use` on the current generation, held for the whole call, with `sql` as a PostgreSQL client means it:
   * catalog references pointed at the generation's catalog look-alike (built on first use).
   */
  private async onGeneration<T>(sql: string, use: (gen: Generation, sql: string) => Promise<T>): Promise<T> {
    const gen = this.generation();
    const release = gen.pin();
    try {
      const rewritten = rewriteForPostgresClients(sql, this.settings);
      if (rewritten !== null) await gen.setupOnce(shimStatements);
      return await use(gen, rewritten ?? sql);
    } finally {
      release();
    }
  }

  private generation(): Generation {
    const gen = this.catalog.generation;
    if (!gen) throw new PgError('57P03', 'the tables are still loading; retry shortly');
    return gen;
  }

  // ---------- simple query ----------

  private async simpleQuery(sql: string): Promise<Buffer> {
    const statements = splitStatements(sql);
    for (const s of statements) {
      if (!s.trim()) {
        await this.send(emptyQueryResponse());
        continue;
      }
      try {
        const local = localStatement(s, this.settings);
        if (local) await this.send(await this.runLocal(local, true));
        else await this.runQuery(s, [], [], null, true);
      } catch (err) {
        if (this.status === 'T') this.status = 'E';
        await this.send(this.errorOf(err));
        break;
      }
    }
    return readyForQuery(this.status);
  }

  // ---------- extended query ----------

  private async parse(body: Reader): Promise<Buffer> {
    const name = body.cstring();
    const sql = body.cstring();
    const given = Array.from({ length: body.int16() }, () => body.int32());
    const local = localStatement(sql, this.settings);
    let paramOids = given;
    let columns: Prepared['columns'] = null;
    if (!local && sql.trim()) {
      const d = await this.onGeneration(sql, (gen, text) => describeStatement(gen, text, this.limits)).catch((err: unknown) => {
        if (holdsNothing(sql, err)) return null;
        throw toPgError(err);
      });
      paramOids = d ? d.parameters.map((t, i) => given[i] || paramOid(t)) : given;
      columns = d ? d.columns.map((c) => ({ name: pgColumnName(c.name, sql), col: pgColumn(c.type) })) : [{ name: '?column?', col: TEXT_COLUMN }];
    }
    if (local?.kind === 'show') columns = [{ name: local.name, col: { oid: OID.text, size: -1, modifier: -1, nested: false } }];
    this.statements.set(name, { sql, local, paramOids, columns });
    return parseComplete();
  }

  private bind(body: Reader): Buffer {
    const portal = body.cstring();
    const name = body.cstring();
    const statement = this.statements.get(name);
    if (!statement) throw new PgError('26000', `prepared statement "${name}" does not exist`);
    const formatCodes = Array.from({ length: body.int16() }, () => body.int16());
    const count = body.int16();
    const params: ParameterValue[] = [];
    for (let i = 0; i < count; i++) {
      const len = body.int32();
      if (len < 0) {
        params.push(null);
        continue;
      }
      const bytes = body.bytes(len);
      const format = formatCodes.length === 1 ? formatCodes[0] : (formatCodes[i] ?? 0);
      params.push(format === 1 ? binaryParameter(statement.paramOids[i] ?? 0, bytes) : bytes.toString('utf8'));
    }
    const resultCodes = Array.from({ length: body.int16() }, () => body.int16() as 0 | 1);
    const n = statement.columns?.length ?? 0;
    const formats = Array.from({ length: n }, (_, i) => (resultCodes.length === 1 ? resultCodes[0]! : (resultCodes[i] ?? 0)));
    this.portals.set(portal, { statement, params, formats });
    return bindComplete();
  }

  private describe(body: Reader): Buffer {
    const kind = String.fromCharCode(body.byte());
    const name = body.cstring();
    if (kind === 'S') {
      const s = this.statements.get(name);
      if (!s) throw new PgError('26000', `prepared statement "${name}" does not exist`);
      const rows = s.columns?.length ? rowDescription(s.columns.map((c) => fieldOf(c.name, c.col, 0))) : noData();
      return Buffer.concat([parameterDescription(s.paramOids), rows]);
    }
    const p = this.portals.get(name);
    if (!p) throw new PgError('34000', `portal "${name}" does not exist`);
    return p.statement.columns?.length ? rowDescription(p.statement.columns.map((c, i) => fieldOf(c.name, c.col, p.formats[i] ?? 0))) : noData();
  }

  private async execute(body: Reader): Promise<Buffer> {
    const name = body.cstring();
    const maxRows = body.int32();
    const p = this.portals.get(name);
    if (!p) throw new PgError('34000', `portal "${name}" does not exist`);
    const s = p.statement;
    if (s.local) return await this.runLocal(s.local, false);
    if (!s.sql.trim()) return emptyQueryResponse();
    if (maxRows > 0) {
      // A row limit (a cursor-like fetch): the rows are produced once, then handed out maxRows at a time.
      if (!p.pending) {
        const rows: Buffer[] = [];
        await this.runQuery(s.sql, p.params, p.formats, rows, false);
        p.pending = rows;
        p.sent = 0;
      }
      const batch = p.pending.splice(0, maxRows);
      p.sent = (p.sent ?? 0) + batch.length;
      await this.send(Buffer.concat(batch));
      if (p.pending.length) return portalSuspended();
      return commandComplete(`SELECT ${p.sent}`);
    }
    await this.runQuery(s.sql, p.params, p.formats, null, false);
    return Buffer.alloc(0);
  }

  // ---------- running ----------

  private async runLocal(local: LocalStatement, describe: boolean): Promise<Buffer> {
    switch (local.kind) {
      case 'set':
        if (local.name === null && local.tag === 'RESET') Object.assign(this.settings, DEFAULT_SETTINGS);
        else if (local.name !== null) this.settings[local.name] = local.value ?? DEFAULT_SETTINGS[local.name] ?? '';
        return commandComplete(local.tag);
      case 'show': {
        const value = Buffer.from(this.settings[local.name] ?? '');
        const head = describe ? [rowDescription([fieldOf(local.name, { oid: OID.text, size: -1, modifier: -1, nested: false }, 0)])] : [];
        return Buffer.concat([...head, dataRow([value]), commandComplete('SHOW')]);
      }
      case 'transaction':
        this.status = local.status;
        return commandComplete(local.tag);
      case 'tag':
        if (local.deallocate !== undefined) {
          if (local.deallocate.toLowerCase() === 'all') this.statements.clear();
          else this.statements.delete(local.deallocate);
        }
        return commandComplete(local.tag);
    }
  }

  /**
   * Runs one statement: RowDescription (simple protocol only; the extended protocol described it already), the
   * rows, CommandComplete. With `collect`, rows go there instead of to the client (and no CommandComplete).
   */
  private async runQuery(sql: string, params: ParameterValue[], formats: (0 | 1)[], collect: Buffer[] | null, describe: boolean): Promise<void> {
    const controller = new AbortController();
    this.running = controller;
    try {
      await this.onGeneration(sql, async (gen, text) => {
        // The result cache HTTP uses: the same statement, parameters and result formats on the same table
        // versions is the same answer. Rows handed out in pieces (collect) are not cached.
        const cacheable = !collect && isCacheable(text);
        const normalized = normalizeSql(text);
        const identity = `${normalized}\n${JSON.stringify(params.map((p) => (p instanceof Uint8Array ? Buffer.from(p).toString('base64') : p)))}\n${formats.join('')}${describe ? 'D' : ''}`;
        const keyOf = (tables: Record<string, number>) => resultKey(identity, 'pg', tables, (t) => gen.publishedAt(t));
        const refs = cacheable ? this.shared.references.known(normalized) : undefined;
        if (refs) {
          const hit = this.shared.cache.get(keyOf(versionsRead(refs, gen.versions())));
          if (hit) {
            pgQueries.inc({ outcome: 'ok' });
            await this.send(hit.body);
            return;
          }
        }
        const versions = gen.versions();
        const tablesRead = cacheable ? this.shared.references.parse(text, normalized).then((r) => versionsRead(r, versions)) : null;
        tablesRead?.catch(() => undefined);
        let recorded: Buffer[] | null = cacheable ? [] : null;
        let recordedBytes = 0;
        const record = (b: Buffer) => {
          if (!recorded) return;
          recordedBytes += b.length;
          if (recordedBytes > this.shared.maxEntryBytes) recorded = null;
          else recorded.push(b);
        };
        const count = await withResult(gen, text, 'pg', this.limits, {}, async (result, _tables, deadlineAt) => await this.sendRows(result, sql, formats, collect, describe, deadlineAt, record), {
          bind: params,
          signal: controller.signal,
        });
        pgQueries.inc({ outcome: 'ok' });
        if (collect) return;
        const tail = commandComplete(`SELECT ${count}`);
        await this.send(tail);
        const tables = await tablesRead?.catch(() => null);
        if (recorded && tables) {
          const body = Buffer.concat([...recorded, tail]);
          this.shared.cache.set(keyOf(tables), { contentType: 'pg', body, rowCount: count, truncated: false, tables, elapsedMs: 0, etag: '' });
        }
      });
    } catch (err) {
      if (!holdsNothing(sql, err)) throw err;
      // A catalog FlashDuck has nothing in (policies, triggers, publications, …) asked in a form DuckDB does not
      // take: its answer is no rows.
      pgQueries.inc({ outcome: 'ok' });
      if (collect) return;
      await this.send(Buffer.concat([...(describe ? [rowDescription([fieldOf('?column?', TEXT_COLUMN, 0)])] : []), commandComplete('SELECT 0')]));
    } finally {
      this.running = null;
    }
  }

  private async sendRows(result: DuckDBResult, sql: string, formats: (0 | 1)[], collect: Buffer[] | null, describe: boolean, deadlineAt: number, record: (bytes: Buffer) => void): Promise<number> {
    const types: DuckDBType[] = Array.from({ length: result.columnCount }, (_, i) => result.columnType(i));
    const cols = types.map(pgColumn);
    const binary = cols.map((c, i) => fieldOf('', c, formats[i] ?? 0).format === 1);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let total = 0;
    const flush = async () => {
      if (!pendingBytes) return;
      const out = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      record(out);
      await this.send(out);
    };
    if (describe) {
      const names = Array.from({ length: result.columnCount }, (_, i) => pgColumnName(result.columnName(i), sql));
      const head = rowDescription(names.map((n, i) => fieldOf(n, cols[i]!, formats[i] ?? 0)));
      pending.push(head);
      pendingBytes += head.length;
    }
    let rows = 0;
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      for (const row of chunk.getRows()) {
        const bytes = dataRow(row.map((v, i) => (v === null ? null : binary[i] ? binaryValue(v, cols[i]!, types[i]!) : Buffer.from(textValue(v, cols[i]!, types[i]!), 'utf8'))));
        total += bytes.length;
        if (total > this.limits.maxStreamBytes) throw new AppError('too_large', `the result is larger than ${this.limits.maxStreamBytes} bytes (QUERY_MAX_STREAM_BYTES); add a LIMIT or a WHERE`);
        rows += 1;
        if (collect) collect.push(bytes);
        else {
          pending.push(bytes);
          pendingBytes += bytes.length;
        }
      }
      if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
      if (Date.now() > deadlineAt) throw new Error('INTERRUPT: deadline passed while the rows were sent');
    }
    await flush();
    return rows;
  }
}

const TEXT_COLUMN: PgColumn = { oid: OID.text, size: -1, modifier: -1, nested: false };

/** A catalog query that DuckDB could not bind or parse, about objects FlashDuck never has. */
function holdsNothing(sql: string, err: unknown): boolean {
  return err instanceof AppError && err.code === 'bad_sql' && answersNothing(sql);
}

/** The OID a DuckDB parameter type is described as (text when DuckDB could not tell). */
function paramOid(type: DuckDBType): number {
  const s = type.toString();
  if (s === 'NULL' || s === 'ANY' || s === 'UNKNOWN' || s === 'INVALID') return OID.text;
  return pgColumn(type).oid;
}
