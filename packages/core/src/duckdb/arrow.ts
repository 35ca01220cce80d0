import * as A from 'apache-arrow';
import {
  BIGINT,
  BLOB,
  BOOLEAN,
  DATE,
  DOUBLE,
  DuckDBBlobValue,
  DuckDBDataChunk,
  DuckDBDateValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  DuckDBTypeId,
  FLOAT,
  INTEGER,
  SMALLINT,
  TIMESTAMP,
  TIMESTAMP_MS,
  TIMESTAMP_NS,
  TIMESTAMP_S,
  TIMESTAMPTZ,
  TINYINT,
  UBIGINT,
  UINTEGER,
  USMALLINT,
  UTINYINT,
  VARCHAR,
  type DuckDBConnection,
  type DuckDBResult,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { randomBytes } from 'node:crypto';
import { quoteIdent } from '../sql.js';
import { jsonValueConverter } from './json-values.js';

/** Types sent as JSON text (they cast back from JSON); other text-carried types use DuckDB's own text form. */
const NESTED = new Set<DuckDBTypeId>([DuckDBTypeId.LIST, DuckDBTypeId.STRUCT, DuckDBTypeId.MAP, DuckDBTypeId.ARRAY, DuckDBTypeId.UNION]);

type Kind = 'number' | 'bigint' | 'bool' | 'utf8' | 'binary' | 'date' | 'timestamp' | 'text';

interface ColumnPlan {
  readonly name: string;
  readonly duckType: DuckDBType;
  readonly arrowType: A.DataType;
  readonly kind: Kind;
}

function timestampUnitOf(id: DuckDBTypeId): A.TimeUnit {
  if (id === DuckDBTypeId.TIMESTAMP_S) return A.TimeUnit.SECOND;
  if (id === DuckDBTypeId.TIMESTAMP_MS) return A.TimeUnit.MILLISECOND;
  if (id === DuckDBTypeId.TIMESTAMP_NS) return A.TimeUnit.NANOSECOND;
  return A.TimeUnit.MICROSECOND;
}

/**
 * How each DuckDB type travels in Arrow: numbers, booleans, text, blobs, dates and timestamps
 * natively (timestamps with their own unit, exact); DECIMAL as Float64 up to 15 digits, as text
 * beyond; 128-bit integers, TIME, INTERVAL, UUID, lists, structs and maps as text (JSON for nested).
 */
function planColumn(name: string, type: DuckDBType): ColumnPlan {
  const p = (arrowType: A.DataType, kind: Kind): ColumnPlan => ({ name, duckType: type, arrowType, kind });
  switch (type.typeId) {
    case DuckDBTypeId.BOOLEAN:
      return p(new A.Bool(), 'bool');
    case DuckDBTypeId.TINYINT:
      return p(new A.Int8(), 'number');
    case DuckDBTypeId.SMALLINT:
      return p(new A.Int16(), 'number');
    case DuckDBTypeId.INTEGER:
      return p(new A.Int32(), 'number');
    case DuckDBTypeId.BIGINT:
      return p(new A.Int64(), 'bigint');
    case DuckDBTypeId.UTINYINT:
      return p(new A.Uint8(), 'number');
    case DuckDBTypeId.USMALLINT:
      return p(new A.Uint16(), 'number');
    case DuckDBTypeId.UINTEGER:
      return p(new A.Uint32(), 'number');
    case DuckDBTypeId.UBIGINT:
      return p(new A.Uint64(), 'bigint');
    case DuckDBTypeId.FLOAT:
      return p(new A.Float32(), 'number');
    case DuckDBTypeId.DOUBLE:
      return p(new A.Float64(), 'number');
    case DuckDBTypeId.DECIMAL:
      return ((type as { width?: number }).width ?? 38) <= 15 ? p(new A.Float64(), 'number') : p(new A.Utf8(), 'text');
    case DuckDBTypeId.VARCHAR:
      return p(new A.Utf8(), 'utf8');
    case DuckDBTypeId.BLOB:
      return p(new A.Binary(), 'binary');
    case DuckDBTypeId.DATE:
      return p(new A.DateDay(), 'date');
    case DuckDBTypeId.TIMESTAMP:
    case DuckDBTypeId.TIMESTAMP_S:
    case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_NS:
      return p(new A.Timestamp(timestampUnitOf(type.typeId)), 'timestamp');
    case DuckDBTypeId.TIMESTAMP_TZ:
      return p(new A.Timestamp(A.TimeUnit.MICROSECOND, 'UTC'), 'timestamp');
    default:
      return p(new A.Utf8(), 'text');
  }
}

function timestampRaw(v: DuckDBValue): bigint {
  const t = v as { micros?: bigint; millis?: bigint; seconds?: bigint; nanos?: bigint };
  return t.micros ?? t.millis ?? t.seconds ?? t.nanos ?? 0n;
}

class ColumnBuilder {
  private builder: A.Builder;

  constructor(readonly plan: ColumnPlan) {
    this.builder = ColumnBuilder.make(plan);
  }

  private static make(plan: ColumnPlan): A.Builder {
    // Dates and timestamps are built as raw integers and retyped at flush: exact, and no Date objects.
    const type = plan.kind === 'timestamp' ? new A.Int64() : plan.kind === 'date' ? new A.Int32() : plan.arrowType;
    return A.makeBuilder({ type, nullValues: [null, undefined] });
  }

  append(values: readonly DuckDBValue[]): void {
    const b = this.builder;
    const { kind, duckType } = this.plan;
    for (const v of values) {
      if (v === null) {
        b.append(null);
        continue;
      }
      switch (kind) {
        case 'number':
          b.append(typeof v === 'number' ? v : Number(String(v)));
          break;
        case 'bigint':
        case 'bool':
        case 'utf8':
          b.append(v);
          break;
        case 'binary':
          b.append((v as DuckDBBlobValue).bytes);
          break;
        case 'date':
          b.append((v as DuckDBDateValue).days);
          break;
        case 'timestamp':
          b.append(timestampRaw(v));
          break;
        case 'text':
          b.append(NESTED.has(duckType.typeId) ? JSON.stringify(jsonValueConverter(v, duckType, jsonValueConverter)) : String(v));
          break;
      }
    }
  }

  /** The built vector; the builder starts over. */
  flush(): A.Vector {
    const built = this.builder.finish().toVector();
    this.builder = ColumnBuilder.make(this.plan);
    if (this.plan.kind !== 'timestamp' && this.plan.kind !== 'date') return built;
    const datas = built.data.map((d) =>
      A.makeData({
        type: this.plan.arrowType as A.Timestamp,
        offset: d.offset,
        length: d.length,
        nullCount: d.nullCount,
        data: d.values as never,
        nullBitmap: d.nullBitmap,
      } as never),
    );
    return new A.Vector(datas);
  }
}

/** The end-of-stream marker of the Arrow IPC stream format (a continuation token and a zero length). */
const ARROW_EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/**
 * Encodes a DuckDB result as an Arrow IPC stream, piece by piece: the schema message first, then one record
 * batch per `batchRows` rows, then the end-of-stream marker. Memory holds one batch, whatever the result's size.
 * At most `maxRows` rows (`stats.truncated` then says more were there).
 */
export async function* arrowStreamPieces(
  result: DuckDBResult,
  options: { maxRows?: number; batchRows?: number } = {},
  stats: { rows: number; truncated: boolean } = { rows: 0, truncated: false },
): AsyncGenerator<Uint8Array> {
  const names = result.deduplicatedColumnNames();
  const types = result.columnTypes();
  const builders = names.map((n, i) => new ColumnBuilder(planColumn(n, types[i]!)));
  const schema = new A.Schema(builders.map((b) => new A.Field(b.plan.name, b.plan.arrowType, true)));
  const schemaWriter = new A.RecordBatchStreamWriter();
  schemaWriter.reset(undefined, schema);
  const schemaBytes = schemaWriter.toUint8Array(true);
  yield schemaBytes;
  const maxRows = options.maxRows ?? Number.POSITIVE_INFINITY;
  const batchRows = options.batchRows ?? 65_536;
  let pending = 0;
  // A batch's message: what a stream of the schema and that batch holds past the schema (no dictionaries here).
  const flush = (): Uint8Array | null => {
    if (pending === 0) return null;
    const children = builders.map((b) => b.flush());
    const data = A.makeData({ type: new A.Struct(schema.fields), length: pending, nullCount: 0, children: children.map((c) => c.data[0] as A.Data) });
    const writer = new A.RecordBatchStreamWriter();
    writer.reset(undefined, schema);
    writer.write(new A.RecordBatch(schema, data));
    pending = 0;
    return writer.toUint8Array(true).subarray(schemaBytes.length);
  };
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    let take = chunk.rowCount;
    if (stats.rows + take > maxRows) {
      take = maxRows - stats.rows;
      stats.truncated = true;
    }
    builders.forEach((b, i) => {
      const values = chunk.getColumnValues(i);
      b.append(take === values.length ? values : values.slice(0, take));
    });
    stats.rows += take;
    pending += take;
    if (pending >= batchRows) {
      const piece = flush();
      if (piece) yield piece;
    }
    if (stats.truncated) break;
    if (stats.rows === maxRows) {
      const more = await result.fetchChunk();
      stats.truncated = !!more && more.rowCount > 0;
      break;
    }
  }
  const last = flush();
  if (last) yield last;
  yield ARROW_EOS;
}

/** A DuckDB result as one Arrow IPC stream (see {@link arrowStreamPieces}). */
export async function encodeArrowStream(
  result: DuckDBResult,
  options: { maxRows?: number; batchRows?: number } = {},
): Promise<{ bytes: Uint8Array; rows: number; truncated: boolean }> {
  const stats = { rows: 0, truncated: false };
  const pieces: Uint8Array[] = [];
  for await (const piece of arrowStreamPieces(result, options, stats)) pieces.push(piece);
  return { bytes: Buffer.concat(pieces), rows: stats.rows, truncated: stats.truncated };
}

function duckTypeOfArrow(type: A.DataType): DuckDBType {
  switch (type.typeId) {
    case A.Type.Bool:
      return BOOLEAN;
    case A.Type.Int: {
      const t = type as A.Int;
      const map: Record<string, DuckDBType> = {
        '8true': TINYINT,
        '16true': SMALLINT,
        '32true': INTEGER,
        '64true': BIGINT,
        '8false': UTINYINT,
        '16false': USMALLINT,
        '32false': UINTEGER,
        '64false': UBIGINT,
      };
      return map[`${t.bitWidth}${t.isSigned}`] ?? BIGINT;
    }
    case A.Type.Float:
      return (type as A.Float).precision === A.Precision.DOUBLE ? DOUBLE : FLOAT;
    case A.Type.Binary:
    case A.Type.FixedSizeBinary:
      return BLOB;
    case A.Type.Date:
      return DATE;
    case A.Type.Timestamp: {
      const t = type as A.Timestamp;
      if (t.timezone) return TIMESTAMPTZ;
      if (t.unit === A.TimeUnit.SECOND) return TIMESTAMP_S;
      if (t.unit === A.TimeUnit.MILLISECOND) return TIMESTAMP_MS;
      if (t.unit === A.TimeUnit.NANOSECOND) return TIMESTAMP_NS;
      return TIMESTAMP;
    }
    default:
      return VARCHAR;
  }
}

function toDuckValues(vector: A.Vector, from: number, to: number): DuckDBValue[] {
  const out: DuckDBValue[] = new Array<DuckDBValue>(to - from);
  const type = vector.type as A.DataType;
  const stage = duckTypeOfArrow(type).typeId;
  const tz = type.typeId === A.Type.Timestamp ? (type as A.Timestamp) : null;
  const located = (i: number): { data: A.Data; index: number } | null => {
    const { data, index } = locate(vector, i);
    return data.getValid(index) ? { data, index } : null;
  };
  // Dates, timestamps, times and decimals: read the stored integers, not the views `get` gives.
  const raw = (i: number): unknown => {
    const at = located(i);
    return at ? (at.data.values as ArrayLike<unknown>)[at.data.offset + at.index] : null;
  };
  for (let i = from; i < to; i++) {
    const o = i - from;
    if (type.typeId === A.Type.Date) {
      if ((type as A.Date_).unit === A.DateUnit.DAY) {
        const v = raw(i);
        out[o] = v === null ? null : new DuckDBDateValue(Number(v));
      } else {
        const ms = vector.get(i) as number | null;
        out[o] = ms === null || ms === undefined ? null : new DuckDBDateValue(Math.floor(Number(ms) / 86_400_000));
      }
      continue;
    }
    if (tz) {
      const v = raw(i);
      out[o] = v === null ? null : timestampValueFor(tz, BigInt(v as bigint));
      continue;
    }
    if (type.typeId === A.Type.Decimal) {
      const at = located(i);
      const stride = (type as A.Decimal).bitWidth / 32;
      const start = (at ? at.data.offset + at.index : 0) * stride;
      out[o] = at ? decimalText((at.data.values as Uint32Array).subarray(start, start + stride), (type as A.Decimal).scale) : null;
      continue;
    }
    if (type.typeId === A.Type.Time) {
      const v = raw(i);
      out[o] = v === null ? null : timeText(v as number | bigint, (type as A.Time).unit);
      continue;
    }
    const v = vector.get(i) as unknown;
    if (v === null || v === undefined) out[o] = null;
    else if (stage === DuckDBTypeId.BLOB) out[o] = new DuckDBBlobValue(v as Uint8Array);
    else if (stage !== DuckDBTypeId.VARCHAR || typeof v === 'string') out[o] = v as DuckDBValue;
    else if (typeof v === 'object' && !(v instanceof Uint8Array)) out[o] = nestedJson(v);
    else if (v instanceof Uint8Array) out[o] = Buffer.from(v).toString('base64');
    else out[o] = String(v);
  }
  return out;
}

function locate(vector: A.Vector, i: number): { data: A.Data; index: number } {
  let index = i;
  for (const data of vector.data as A.Data[]) {
    if (index < data.length) return { data, index };
    index -= data.length;
  }
  throw new RangeError(`row ${i} is outside the vector`);
}

function timestampValueFor(t: A.Timestamp, raw: bigint): DuckDBValue {
  if (t.timezone) return new DuckDBTimestampTZValue(raw);
  if (t.unit === A.TimeUnit.SECOND) return new DuckDBTimestampSecondsValue(raw);
  if (t.unit === A.TimeUnit.MILLISECOND) return new DuckDBTimestampMillisecondsValue(raw);
  if (t.unit === A.TimeUnit.NANOSECOND) return new DuckDBTimestampNanosecondsValue(raw);
  return new DuckDBTimestampValue(raw);
}

/**
 * Loads an Arrow IPC stream into a new DuckDB table, then casts each column to the type it had
 * when encoded (`types`, by column name), undoing the text encoding of types Arrow cannot carry.
 */
export async function loadArrowStream(
  conn: DuckDBConnection,
  bytes: Uint8Array,
  target: { catalog?: string; table: string },
  types: ReadonlyMap<string, string>,
): Promise<number> {
  const name = target.catalog ? `${quoteIdent(target.catalog)}.${quoteIdent(target.table)}` : quoteIdent(target.table);
  return await loadArrow(conn, bytes, name, types);
}

/**
 * Loads Arrow IPC bytes (the stream or the file form, as written by pyarrow, pandas' `to_feather`, polars or
 * FlashDuck) into a new table `targetSql` (a qualified, quoted name). Types DuckDB takes directly are appended
 * as they are; DECIMAL and TIME arrive as text and are cast back; lists, structs and maps become JSON; any other
 * type is kept as text. `types` (column → DuckDB type) casts columns FlashDuck encoded itself back.
 */
export async function loadArrow(
  conn: DuckDBConnection,
  bytes: Uint8Array,
  targetSql: string,
  types: ReadonlyMap<string, string> = new Map(),
  options: { temporary?: boolean } = {},
): Promise<number> {
  const reader = A.RecordBatchReader.from(bytes);
  reader.open();
  const schema = reader.schema;
  const stageTypes = schema.fields.map((f) => duckTypeOfArrow(f.type as A.DataType));
  const stage = `__stage_${randomBytes(4).toString('hex')}`;
  const cols = schema.fields.map((f, i) => `${quoteIdent(f.name)} ${stageTypes[i]!.toString()}`);
  await conn.run(`CREATE TEMP TABLE ${quoteIdent(stage)} (${cols.join(', ')})`);
  const appender = await conn.createAppender(stage, null, 'temp');
  let rows = 0;
  try {
    for (const batch of reader) {
      for (let start = 0; start < batch.numRows; start += 2048) {
        const end = Math.min(start + 2048, batch.numRows);
        const chunk = DuckDBDataChunk.create(stageTypes, end - start);
        schema.fields.forEach((_, c) => chunk.setColumnValues(c, toDuckValues(batch.getChildAt(c)!, start, end)));
        appender.appendDataChunk(chunk);
      }
      rows += batch.numRows;
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
  const select = schema.fields
    .map((f, i) => {
      const id = quoteIdent(f.name);
      const have = stageTypes[i]!.toString();
      const want = types.get(f.name) ?? arrowCastType(f.type as A.DataType);
      if (!want || want === have) return id;
      // Nested values were sent as JSON text; scalars (DECIMAL, HUGEINT, TIME, ...) as DuckDB's own text form.
      const nested = want === 'JSON' || want.endsWith(']') || /^(STRUCT|MAP|UNION)\(/i.test(want);
      return nested && want !== 'JSON' ? `CAST(CAST(${id} AS JSON) AS ${want}) AS ${id}` : `CAST(${id} AS ${want}) AS ${id}`;
    })
    .join(', ');
  await conn.run(`CREATE ${options.temporary ? 'TEMP ' : ''}TABLE ${targetSql} AS SELECT ${select} FROM temp.${quoteIdent(stage)}`);
  await conn.run(`DROP TABLE temp.${quoteIdent(stage)}`);
  return rows;
}

/** The DuckDB type a column staged as text becomes, for Arrow types DuckDB's appender does not take directly. */
function arrowCastType(type: A.DataType): string | undefined {
  switch (type.typeId) {
    case A.Type.Decimal: {
      const d = type as A.Decimal;
      return d.precision <= 38 ? `DECIMAL(${d.precision}, ${d.scale})` : 'DOUBLE';
    }
    case A.Type.Time:
      return 'TIME';
    case A.Type.List:
    case A.Type.FixedSizeList:
    case A.Type.Struct:
    case A.Type.Map:
      return 'JSON';
    default:
      return undefined;
  }
}

/** A 128/256-bit two's-complement little-endian integer (Arrow's DECIMAL storage) as text with `scale` decimals. */
function decimalText(words: Uint32Array, scale: number): string {
  let n = 0n;
  for (let i = words.length - 1; i >= 0; i--) n = (n << 32n) | BigInt(words[i]!);
  const bits = BigInt(words.length * 32);
  if (n >> (bits - 1n)) n -= 1n << bits;
  const neg = n < 0n;
  const digits = (neg ? -n : n).toString().padStart(scale + 1, '0');
  const text = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return neg ? `-${text}` : text;
}

/** JSON for a nested Arrow value (lists, structs, maps), 64-bit integers as numbers or strings past 2^53. */
function nestedJson(v: unknown): string {
  const plain = (x: unknown): unknown => {
    if (x === null || x === undefined) return null;
    if (typeof x === 'bigint') return x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(x) : x.toString();
    if (x instanceof Uint8Array) return Buffer.from(x).toString('base64');
    if (typeof x === 'object' && typeof (x as { toJSON?: unknown }).toJSON === 'function') return plain((x as { toJSON(): unknown }).toJSON());
    if (Array.isArray(x)) return x.map(plain);
    if (x instanceof Map) return Object.fromEntries([...x].map(([k, val]) => [String(k), plain(val)]));
    if (typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, val]) => [k, plain(val)]));
    return x;
  };
  return JSON.stringify(plain(v));
}

/** An Arrow TIME value (its unit's count since midnight) as `HH:MM:SS.ffffff`. */
function timeText(raw: number | bigint, unit: A.TimeUnit): string {
  const perSecond = unit === A.TimeUnit.SECOND ? 1n : unit === A.TimeUnit.MILLISECOND ? 1000n : unit === A.TimeUnit.MICROSECOND ? 1_000_000n : 1_000_000_000n;
  const n = BigInt(raw);
  const secs = n / perSecond;
  const micros = ((n % perSecond) * 1_000_000n) / perSecond;
  const pad = (x: bigint) => x.toString().padStart(2, '0');
  return `${pad(secs / 3600n)}:${pad((secs / 60n) % 60n)}:${pad(secs % 60n)}.${micros.toString().padStart(6, '0')}`;
}
