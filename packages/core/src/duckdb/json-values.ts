import {
  DuckDBTypeId,
  JsonDuckDBValueConverter,
  createDuckDBValueConverter,
  type DuckDBType,
  type DuckDBValue,
  type DuckDBValueConverter,
  type Json,
} from '@duckdb/node-api';

const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);

function safeInteger(value: DuckDBValue): Json {
  const n = value as bigint;
  return n <= SAFE_MAX && n >= SAFE_MIN ? Number(n) : n.toString();
}

/** ISO 8601 from epoch microseconds, keeping microseconds; null for ±infinity. */
export function isoFromMicros(micros: bigint): string | null {
  const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return null;
  const sub = Number(micros - ms * 1000n);
  const iso = date.toISOString();
  return sub === 0 ? iso : `${iso.slice(0, -1)}${String(sub).padStart(3, '0')}Z`;
}

function timestampIso(value: DuckDBValue): Json {
  const v = value as { micros?: bigint; millis?: bigint; seconds?: bigint; nanos?: bigint; toString(): string };
  let micros: bigint | undefined;
  if (typeof v.micros === 'bigint') micros = v.micros;
  else if (typeof v.millis === 'bigint') micros = v.millis * 1000n;
  else if (typeof v.seconds === 'bigint') micros = v.seconds * 1_000_000n;
  else if (typeof v.nanos === 'bigint') micros = v.nanos / 1000n;
  return (micros !== undefined ? isoFromMicros(micros) : null) ?? v.toString();
}

function decimalJson(value: DuckDBValue, type: DuckDBType): Json {
  // Up to 15 significant digits survive a double exactly; wider decimals stay exact as strings.
  const width = (type as { width?: number }).width ?? 38;
  const text = String(value);
  return width <= 15 ? Number(text) : text;
}

/** A DATE as DuckDB writes it, `infinity` and `-infinity` included (the client library spells them as dates). */
function dateText(value: DuckDBValue): Json {
  const days = (value as { days: number }).days;
  if (days === 2_147_483_647) return 'infinity';
  if (days === -2_147_483_647) return '-infinity';
  return String(value);
}

const base = JsonDuckDBValueConverter;
const overrides: Partial<Record<DuckDBTypeId, DuckDBValueConverter<Json>>> = {
  [DuckDBTypeId.BIGINT]: safeInteger,
  [DuckDBTypeId.UBIGINT]: safeInteger,
  [DuckDBTypeId.HUGEINT]: safeInteger,
  [DuckDBTypeId.UHUGEINT]: safeInteger,
  [DuckDBTypeId.DECIMAL]: decimalJson,
  [DuckDBTypeId.TIMESTAMP]: timestampIso,
  [DuckDBTypeId.TIMESTAMP_TZ]: timestampIso,
  [DuckDBTypeId.TIMESTAMP_S]: timestampIso,
  [DuckDBTypeId.TIMESTAMP_MS]: timestampIso,
  [DuckDBTypeId.TIMESTAMP_NS]: timestampIso,
  [DuckDBTypeId.BLOB]: (value) => Buffer.from((value as { bytes: Uint8Array }).bytes).toString('base64'),
  [DuckDBTypeId.DATE]: dateText,
  // DuckDB's own text ('1 year 2 months 3 days 04:05:06.789'), which casts back to the same INTERVAL.
  [DuckDBTypeId.INTERVAL]: (value) => String(value),
};

const byTypeId = {} as Record<DuckDBTypeId, DuckDBValueConverter<Json> | undefined>;
for (const id of Object.values(DuckDBTypeId)) {
  if (typeof id !== 'number') continue;
  byTypeId[id] =
    overrides[id] ?? ((value: DuckDBValue, type: DuckDBType, conv: DuckDBValueConverter<Json>) => base(value, type, conv));
}

/**
 * DuckDB values as JSON: 64/128-bit integers as numbers inside the safe range and strings outside it,
 * timestamps as ISO 8601 (UTC, microseconds kept), DECIMAL wider than 15 digits as strings,
 * BLOB as base64, DATE and INTERVAL as DuckDB's text (`infinity` kept), nested types as arrays/objects.
 */
export const jsonValueConverter: DuckDBValueConverter<Json> = createDuckDBValueConverter(byTypeId);
