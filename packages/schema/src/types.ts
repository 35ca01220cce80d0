/**
 * Parsing and classifying DuckDB type names as DESCRIBE prints them
 * (`INTEGER`, `DECIMAL(18,3)`, `VARCHAR[]`, `STRUCT(a INTEGER, b VARCHAR)`, ...).
 */

/** The family a type belongs to, which decides how it widens. */
export type TypeFamily =
  | 'null'
  | 'boolean'
  | 'integer'
  | 'decimal'
  | 'float'
  | 'string'
  | 'json'
  | 'date'
  | 'timestamp'
  | 'time'
  | 'blob'
  | 'uuid'
  | 'interval'
  | 'nested'
  | 'other';

/** Signed and unsigned integer types with their width in bits. */
export const INTEGER_TYPES: Readonly<Record<string, { bits: number; signed: boolean }>> = {
  TINYINT: { bits: 8, signed: true },
  SMALLINT: { bits: 16, signed: true },
  INTEGER: { bits: 32, signed: true },
  BIGINT: { bits: 64, signed: true },
  HUGEINT: { bits: 128, signed: true },
  UTINYINT: { bits: 8, signed: false },
  USMALLINT: { bits: 16, signed: false },
  UINTEGER: { bits: 32, signed: false },
  UBIGINT: { bits: 64, signed: false },
  UHUGEINT: { bits: 128, signed: false },
};

/** Decimal digits needed to hold every value of an integer type (DuckDB's own casting table). */
export const INTEGER_DECIMAL_DIGITS: Readonly<Record<string, number>> = {
  TINYINT: 3,
  SMALLINT: 5,
  INTEGER: 10,
  BIGINT: 19,
  HUGEINT: 39,
  UTINYINT: 3,
  USMALLINT: 5,
  UINTEGER: 10,
  UBIGINT: 20,
  UHUGEINT: 39,
};

const ALIASES: Readonly<Record<string, string>> = {
  INT: 'INTEGER',
  INT4: 'INTEGER',
  INT32: 'INTEGER',
  SIGNED: 'INTEGER',
  INT8: 'BIGINT',
  INT64: 'BIGINT',
  LONG: 'BIGINT',
  INT2: 'SMALLINT',
  INT16: 'SMALLINT',
  SHORT: 'SMALLINT',
  INT1: 'TINYINT',
  INT128: 'HUGEINT',
  BOOL: 'BOOLEAN',
  LOGICAL: 'BOOLEAN',
  FLOAT4: 'FLOAT',
  REAL: 'FLOAT',
  FLOAT8: 'DOUBLE',
  NUMERIC: 'DECIMAL',
  STRING: 'VARCHAR',
  TEXT: 'VARCHAR',
  CHAR: 'VARCHAR',
  BPCHAR: 'VARCHAR',
  DATETIME: 'TIMESTAMP',
  'TIMESTAMP WITHOUT TIME ZONE': 'TIMESTAMP',
  TIMESTAMPTZ: 'TIMESTAMP WITH TIME ZONE',
  'TIMESTAMP_US': 'TIMESTAMP',
  BYTEA: 'BLOB',
  BINARY: 'BLOB',
  VARBINARY: 'BLOB',
  '"NULL"': 'NULL',
};

/**
 * Normalizes a type name: upper case, aliases resolved, `VARCHAR(10)` to
 * `VARCHAR`. Nested types keep their structure.
 */
export function normalizeType(type: string): string {
  const t = type.trim();
  const upper = t.toUpperCase();
  if (upper.startsWith('STRUCT(') || upper.startsWith('MAP(') || upper.startsWith('UNION(')) return t;
  if (upper.endsWith(']')) {
    const open = t.lastIndexOf('[');
    return `${normalizeType(t.slice(0, open))}${t.slice(open)}`;
  }
  if (/^VARCHAR\s*\(/.test(upper)) return 'VARCHAR';
  const decimal = /^(DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$/.exec(upper);
  if (decimal) return `DECIMAL(${decimal[2]},${decimal[3] ?? '0'})`;
  if (upper === 'DECIMAL' || upper === 'NUMERIC') return 'DECIMAL(18,3)';
  return ALIASES[upper] ?? upper;
}

/** Parses `DECIMAL(p,s)`; null for any other type. */
export function decimalParts(type: string): { precision: number; scale: number } | null {
  const m = /^DECIMAL\((\d+),(\d+)\)$/.exec(type);
  return m ? { precision: Number(m[1]), scale: Number(m[2]) } : null;
}

/** Classifies a normalized type name. */
export function typeFamily(type: string): TypeFamily {
  if (type === 'NULL') return 'null';
  if (type === 'BOOLEAN') return 'boolean';
  if (type in INTEGER_TYPES) return 'integer';
  if (decimalParts(type)) return 'decimal';
  if (type === 'FLOAT' || type === 'DOUBLE') return 'float';
  if (type === 'VARCHAR') return 'string';
  if (type === 'JSON') return 'json';
  if (type === 'DATE') return 'date';
  if (type.startsWith('TIMESTAMP')) return 'timestamp';
  if (type === 'TIME' || type === 'TIME WITH TIME ZONE' || type === 'TIMETZ' || type === 'TIME_NS') return 'time';
  if (type === 'BLOB') return 'blob';
  if (type === 'UUID') return 'uuid';
  if (type === 'INTERVAL') return 'interval';
  if (type.endsWith(']') || /^(STRUCT|MAP|UNION)\(/i.test(type)) return 'nested';
  return 'other';
}

/** For `X[]` returns `X`; null when the type is not a list. */
export function listElement(type: string): string | null {
  const m = /^(.*)\[\]$/.exec(type);
  return m ? (m[1] ?? null) : null;
}
