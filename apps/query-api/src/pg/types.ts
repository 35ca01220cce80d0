import type { DuckDBType, DuckDBValue } from '@duckdb/node-api';
import { jsonValueConverter } from '@flashduck/core/duckdb';
import type { FieldDescription } from './messages.js';

/** PostgreSQL type OIDs FlashDuck answers with. */
export const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  float4: 700,
  float8: 701,
  unknown: 705,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  uuid: 2950,
} as const;

/** How a DuckDB column is shown to a PostgreSQL client: its type and how its values are written. */
export interface PgColumn {
  readonly oid: number;
  readonly size: number;
  readonly modifier: number;
  /** Values as JSON text (lists, structs, maps, arrays, unions). */
  readonly nested: boolean;
}

const EPOCH_2000_DAYS = 10_957;
const EPOCH_2000_MICROS = 946_684_800_000_000n;

/** The PostgreSQL type a DuckDB type is answered as (nested types as json, unsigned and 128-bit integers as numeric). */
export function pgColumn(type: DuckDBType): PgColumn {
  return pgColumnOfName(type.toString());
}

/** A RowDescription field for a column; `format` as the client asked for it (binary only where we can write it). */
export function fieldOf(name: string, col: PgColumn, format: 0 | 1): FieldDescription {
  return { name, typeOid: col.oid, typeSize: col.size, typeModifier: col.modifier, format: format === 1 && BINARY_OIDS.has(col.oid) ? 1 : 0 };
}

/** The types whose binary form FlashDuck writes (others answer in text even when binary is asked for). */
const BINARY_OIDS: ReadonlySet<number> = new Set([OID.bool, OID.int2, OID.int4, OID.int8, OID.float4, OID.float8, OID.text, OID.json, OID.bytea, OID.date, OID.timestamp, OID.timestamptz, OID.time, OID.uuid, OID.numeric, OID.interval]);

function floatText(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  return String(n);
}

/** A value in PostgreSQL's text form. */
export function textValue(value: DuckDBValue, col: PgColumn, type: DuckDBType): string {
  if (col.nested) return JSON.stringify(jsonValueConverter(value, type, jsonValueConverter));
  switch (col.oid) {
    case OID.bool:
      return value ? 't' : 'f';
    case OID.float4:
    case OID.float8:
      return floatText(value as number);
    case OID.bytea:
      return `\\x${Buffer.from((value as { bytes: Uint8Array }).bytes).toString('hex')}`;
    case OID.date: {
      const days = (value as { days: number }).days;
      if (days === 2_147_483_647) return 'infinity';
      if (days === -2_147_483_647) return '-infinity';
      return String(value);
    }
    case OID.timestamptz: {
      const s = String(value);
      return /[+-]\d\d(:\d\d)?$/.test(s) ? s : `${s}+00`;
    }
    default:
      return typeof value === 'string' ? value : String(value);
  }
}

/** Epoch microseconds of a DuckDB timestamp value, whatever its unit. */
function micros(value: DuckDBValue): bigint {
  const v = value as { micros?: bigint; millis?: bigint; seconds?: bigint; nanos?: bigint };
  if (typeof v.micros === 'bigint') return v.micros;
  if (typeof v.millis === 'bigint') return v.millis * 1000n;
  if (typeof v.seconds === 'bigint') return v.seconds * 1_000_000n;
  return (v.nanos ?? 0n) / 1000n;
}

/** PostgreSQL's binary NUMERIC from a decimal text: base-10000 digits, weight, sign, display scale. */
export function numericBinary(text: string): Buffer {
  if (text === 'NaN') return Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0]);
  const negative = text.startsWith('-');
  const [intPart = '0', frac = ''] = text.replace(/^[-+]/, '').split('.');
  const dscale = frac.length;
  const intDigits = intPart.replace(/^0+/, '');
  const intPadded = intDigits.padStart(Math.ceil(intDigits.length / 4) * 4, '0');
  const fracPadded = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  let groups = [...(intPadded.match(/.{4}/g) ?? []), ...(fracPadded.match(/.{4}/g) ?? [])].map(Number);
  let weight = intPadded.length / 4 - 1;
  while (groups.length && groups[0] === 0) {
    groups.shift();
    weight -= 1;
  }
  while (groups.length && groups[groups.length - 1] === 0) groups.pop();
  if (!groups.length) {
    weight = 0;
    groups = [];
  }
  const b = Buffer.alloc(8 + groups.length * 2);
  b.writeInt16BE(groups.length, 0);
  b.writeInt16BE(groups.length ? weight : 0, 2);
  b.writeUInt16BE(negative && groups.length ? 0x4000 : 0, 4);
  b.writeInt16BE(dscale, 6);
  groups.forEach((g, i) => b.writeInt16BE(g, 8 + i * 2));
  return b;
}

/** A value in PostgreSQL's binary form (for the types in BINARY_OIDS). */
export function binaryValue(value: DuckDBValue, col: PgColumn, type: DuckDBType): Buffer {
  switch (col.oid) {
    case OID.bool:
      return Buffer.from([value ? 1 : 0]);
    case OID.int2: {
      const b = Buffer.allocUnsafe(2);
      b.writeInt16BE(Number(value));
      return b;
    }
    case OID.int4: {
      const b = Buffer.allocUnsafe(4);
      b.writeInt32BE(Number(value));
      return b;
    }
    case OID.int8: {
      const b = Buffer.allocUnsafe(8);
      b.writeBigInt64BE(BigInt(value as number | bigint));
      return b;
    }
    case OID.float4: {
      const b = Buffer.allocUnsafe(4);
      b.writeFloatBE(value as number);
      return b;
    }
    case OID.float8: {
      const b = Buffer.allocUnsafe(8);
      b.writeDoubleBE(value as number);
      return b;
    }
    case OID.bytea:
      return Buffer.from((value as { bytes: Uint8Array }).bytes);
    case OID.date: {
      const b = Buffer.allocUnsafe(4);
      b.writeInt32BE((value as { days: number }).days - EPOCH_2000_DAYS);
      return b;
    }
    case OID.timestamp:
    case OID.timestamptz: {
      const b = Buffer.allocUnsafe(8);
      b.writeBigInt64BE(micros(value) - EPOCH_2000_MICROS);
      return b;
    }
    case OID.time: {
      const v = value as { micros?: bigint; nanos?: bigint };
      const b = Buffer.allocUnsafe(8);
      b.writeBigInt64BE(v.micros ?? (v.nanos ?? 0n) / 1000n);
      return b;
    }
    case OID.interval: {
      const v = value as { months: number; days: number; micros: bigint };
      const b = Buffer.allocUnsafe(16);
      b.writeBigInt64BE(v.micros, 0);
      b.writeInt32BE(v.days, 8);
      b.writeInt32BE(v.months, 12);
      return b;
    }
    case OID.uuid:
      return Buffer.from(String(value).replace(/-/g, ''), 'hex');
    case OID.numeric:
      return numericBinary(String(value));
    default:
      return Buffer.from(textValue(value, col, type), 'utf8');
  }
}

/** A Bind parameter in its binary form, decoded as text DuckDB casts to the parameter's type. */
export function binaryParameter(oid: number, b: Buffer): string | Uint8Array {
  switch (oid) {
    case OID.bool:
      return b[0] ? 'true' : 'false';
    case OID.int2:
      return String(b.readInt16BE());
    case OID.int4:
      return String(b.readInt32BE());
    case OID.int8:
      return b.readBigInt64BE().toString();
    case OID.float4:
      return floatText(b.readFloatBE());
    case OID.float8:
      return floatText(b.readDoubleBE());
    case OID.text:
    case OID.varchar:
    case OID.json:
    case OID.unknown:
      return b.toString('utf8');
    case OID.bytea:
      return new Uint8Array(b);
    case OID.date:
      return new Date((b.readInt32BE() + EPOCH_2000_DAYS) * 86_400_000).toISOString().slice(0, 10);
    case OID.timestamp:
    case OID.timestamptz: {
      const us = b.readBigInt64BE() + EPOCH_2000_MICROS;
      const ms = us / 1000n;
      const rest = String(Number(us - ms * 1000n)).padStart(3, '0');
      return `${new Date(Number(ms)).toISOString().slice(0, -1)}${rest}${oid === OID.timestamptz ? '+00' : ''}`.replace('T', ' ');
    }
    case OID.uuid: {
      const h = b.toString('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    default:
      throw new Error(`binary parameters of type ${oid} are not supported: send it as text`);
  }
}

/** The PostgreSQL type of a DuckDB type, from its name (as DuckDB prints it and table metadata records it). */
export function pgColumnOfName(type: string): PgColumn {
  const t = type.toUpperCase().trim();
  const c = (oid: number, size = -1, modifier = -1, nested = false): PgColumn => ({ oid, size, modifier, nested });
  if (/\[|^STRUCT|^MAP|^UNION/.test(t)) return c(OID.json, -1, -1, true);
  const decimal = /^DECIMAL\((\d+),\s*(\d+)\)$/.exec(t);
  if (decimal) return c(OID.numeric, -1, ((Number(decimal[1]) << 16) | Number(decimal[2])) + 4);
  switch (t) {
    case 'BOOLEAN':
      return c(OID.bool, 1);
    case 'TINYINT':
    case 'SMALLINT':
    case 'UTINYINT':
      return c(OID.int2, 2);
    case 'INTEGER':
    case 'USMALLINT':
      return c(OID.int4, 4);
    case 'BIGINT':
    case 'UINTEGER':
      return c(OID.int8, 8);
    case 'UBIGINT':
    case 'HUGEINT':
    case 'UHUGEINT':
    case 'DECIMAL':
      return c(OID.numeric);
    case 'FLOAT':
    case 'REAL':
      return c(OID.float4, 4);
    case 'DOUBLE':
      return c(OID.float8, 8);
    case 'DATE':
      return c(OID.date, 4);
    case 'TIME':
    case 'TIME_NS':
      return c(OID.time, 8);
    case 'TIME WITH TIME ZONE':
    case 'TIMETZ':
      return c(OID.timetz, 12);
    case 'TIMESTAMP WITH TIME ZONE':
    case 'TIMESTAMPTZ':
      return c(OID.timestamptz, 8);
    case 'INTERVAL':
      return c(OID.interval, 16);
    case 'BLOB':
      return c(OID.bytea);
    case 'UUID':
      return c(OID.uuid, 16);
    case 'JSON':
      return c(OID.json);
    default:
      return t.startsWith('TIMESTAMP') ? c(OID.timestamp, 8) : c(OID.text);
  }
}
