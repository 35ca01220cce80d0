import {
  INTEGER_DECIMAL_DIGITS,
  INTEGER_TYPES,
  decimalParts,
  listElement,
  normalizeType,
  typeFamily,
} from './types.js';

/**
 * How a pair of types was resolved:
 * - `same`: both were the same type;
 * - `widened`: to a type that holds every value of both (INTEGER+BIGINT→BIGINT, DATE+TIMESTAMP→TIMESTAMP);
 * - `text`: no common typed representation, so values are kept as text (VARCHAR) or JSON.
 */
export type WidenKind = 'same' | 'widened' | 'text';

/** The result of widening two types. */
export interface Widened {
  readonly type: string;
  readonly kind: WidenKind;
  /** The rule that decided, for conflict reports and documentation. */
  readonly rule: string;
}

const MAX_DECIMAL_PRECISION = 38;
const TIMESTAMP_RANK: Readonly<Record<string, number>> = {
  TIMESTAMP_S: 1,
  TIMESTAMP_MS: 2,
  TIMESTAMP: 3,
  TIMESTAMP_NS: 4,
};

const worse = (a: WidenKind, b: WidenKind): WidenKind =>
  a === 'text' || b === 'text' ? 'text' : a === 'widened' || b === 'widened' ? 'widened' : 'same';

function integerFor(bits: number): string | null {
  if (bits <= 8) return 'TINYINT';
  if (bits <= 16) return 'SMALLINT';
  if (bits <= 32) return 'INTEGER';
  if (bits <= 64) return 'BIGINT';
  if (bits <= 128) return 'HUGEINT';
  return null;
}

function widenIntegers(a: string, b: string): Widened {
  const x = INTEGER_TYPES[a]!;
  const y = INTEGER_TYPES[b]!;
  if (x.signed === y.signed) {
    return { type: x.bits >= y.bits ? a : b, kind: 'widened', rule: 'integer+integer→wider integer' };
  }
  const signed = x.signed ? x : y;
  const unsigned = x.signed ? y : x;
  const type = integerFor(Math.max(signed.bits, unsigned.bits * 2));
  return type
    ? { type, kind: 'widened', rule: 'signed+unsigned integer→signed integer that holds both' }
    : { type: 'DOUBLE', kind: 'widened', rule: 'signed+unsigned 128-bit integer→DOUBLE' };
}

function decimalOf(type: string): { precision: number; scale: number } {
  const d = decimalParts(type);
  if (d) return d;
  return { precision: INTEGER_DECIMAL_DIGITS[type] ?? MAX_DECIMAL_PRECISION, scale: 0 };
}

function widenDecimals(a: string, b: string): Widened {
  const x = decimalOf(a);
  const y = decimalOf(b);
  const scale = Math.max(x.scale, y.scale);
  const digits = Math.max(x.precision - x.scale, y.precision - y.scale);
  if (digits + scale > MAX_DECIMAL_PRECISION) {
    return { type: 'DOUBLE', kind: 'widened', rule: 'decimal wider than 38 digits→DOUBLE' };
  }
  return { type: `DECIMAL(${digits + scale},${scale})`, kind: 'widened', rule: 'decimal/integer→DECIMAL that holds both' };
}

function widenTimestamps(a: string, b: string): Widened {
  if (a.includes('TIME ZONE') || b.includes('TIME ZONE')) {
    return { type: 'TIMESTAMP WITH TIME ZONE', kind: 'widened', rule: 'timestamp+timestamptz→TIMESTAMPTZ (naive values read as UTC)' };
  }
  const ra = TIMESTAMP_RANK[a] ?? TIMESTAMP_RANK.TIMESTAMP!;
  const rb = TIMESTAMP_RANK[b] ?? TIMESTAMP_RANK.TIMESTAMP!;
  return { type: ra >= rb ? a : b, kind: 'widened', rule: 'timestamp+timestamp→finer precision' };
}

const TEXT: Widened = { type: 'VARCHAR', kind: 'text', rule: 'incompatible types→VARCHAR' };

/**
 * Widens two DuckDB types to one that can hold the values of both.
 * The rules, in order (documented in docs/DATA.md, schema evolution):
 *
 * 1. equal types stay; `NULL` (a column with no values in a file) takes the other type;
 * 2. integers widen to the narrowest integer that holds both (signed+unsigned → next signed width);
 * 3. integer or DECIMAL with DECIMAL → DECIMAL with enough digits on both sides of the point, DOUBLE past 38 digits;
 * 4. FLOAT+FLOAT → FLOAT; any other number with FLOAT/DOUBLE → DOUBLE;
 * 5. DATE+TIMESTAMP → TIMESTAMP; timestamps → the finer precision; with TIMESTAMPTZ → TIMESTAMPTZ;
 * 6. lists widen element-wise (`INTEGER[]`+`BIGINT[]` → `BIGINT[]`); other nested mismatches and JSON → JSON;
 * 7. anything else, and anything with VARCHAR → VARCHAR (values are kept as text, never dropped or nulled).
 */
export function widenTypes(left: string, right: string): Widened {
  const a = normalizeType(left);
  const b = normalizeType(right);
  if (a === b) return { type: a, kind: 'same', rule: 'same type' };
  const fa = typeFamily(a);
  const fb = typeFamily(b);
  if (fa === 'null') return { type: b, kind: 'same', rule: 'NULL takes the other type' };
  if (fb === 'null') return { type: a, kind: 'same', rule: 'NULL takes the other type' };
  if (fa === 'string' || fb === 'string') return { type: 'VARCHAR', kind: 'text', rule: 'anything+VARCHAR→VARCHAR' };
  if (fa === 'integer' && fb === 'integer') return widenIntegers(a, b);
  const numeric = (f: string) => f === 'integer' || f === 'decimal';
  if (numeric(fa) && numeric(fb)) return widenDecimals(a, b);
  const anyNumber = (f: string) => numeric(f) || f === 'float';
  if (anyNumber(fa) && anyNumber(fb)) {
    return a === 'FLOAT' && b === 'FLOAT'
      ? { type: 'FLOAT', kind: 'same', rule: 'same type' }
      : { type: 'DOUBLE', kind: 'widened', rule: 'number+floating point→DOUBLE' };
  }
  if (fa === 'timestamp' && fb === 'timestamp') return widenTimestamps(a, b);
  if ((fa === 'date' && fb === 'timestamp') || (fa === 'timestamp' && fb === 'date')) {
    const ts = fa === 'timestamp' ? a : b;
    return { type: ts, kind: 'widened', rule: 'DATE+TIMESTAMP→TIMESTAMP' };
  }
  const la = listElement(a);
  const lb = listElement(b);
  if (la !== null && lb !== null) {
    const inner = widenTypes(la, lb);
    return { type: `${inner.type}[]`, kind: worse('widened', inner.kind), rule: 'lists widen element-wise' };
  }
  const structured = (f: string) => f === 'nested' || f === 'json';
  if (structured(fa) && structured(fb)) return { type: 'JSON', kind: 'text', rule: 'differing nested types→JSON' };
  return TEXT;
}

/** One column as one file declares it. */
export interface ColumnDecl {
  readonly name: string;
  readonly type: string;
  /** Types of the values one file held in this column before they were kept as text (JSON with mixed scalars). */
  readonly mixed?: readonly string[];
}

/** A file's schema, as read by the cacher. */
export interface FileSchema {
  readonly file: string;
  readonly columns: readonly ColumnDecl[];
}

/** A column of the merged table schema. */
export interface MergedColumn {
  readonly name: string;
  readonly type: string;
  /** The files that have this column, in input order. */
  readonly files: readonly string[];
}

/** A column whose type differed between files, and how it was resolved. */
export interface TypeConflict {
  readonly column: string;
  readonly types: readonly { readonly file: string; readonly type: string }[];
  readonly resolved: string;
  readonly kind: Exclude<WidenKind, 'same'>;
  readonly rule: string;
}

/** The merged schema of a table. */
export interface MergedSchema {
  readonly columns: readonly MergedColumn[];
  readonly conflicts: readonly TypeConflict[];
}

/**
 * Unions file schemas by column name. Names match case-insensitively (as SQL identifiers do);
 * the first spelling seen wins. Columns keep the order of first appearance. A column missing
 * from a file is NULL for that file's rows. Types widen pairwise with {@link widenTypes}.
 */
export function mergeSchemas(files: readonly FileSchema[]): MergedSchema {
  interface Acc {
    name: string;
    type: string;
    kind: WidenKind;
    rule: string;
    files: string[];
    types: { file: string; type: string }[];
  }
  const byKey = new Map<string, Acc>();
  for (const f of files) {
    const seen = new Set<string>();
    for (const col of f.columns) {
      const key = col.name.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      const type = normalizeType(col.type);
      const own = col.mixed && col.mixed.length > 1 ? col.mixed.map((t) => ({ file: f.file, type: t })) : [{ file: f.file, type }];
      const mixedRule = 'values of several types in one file→VARCHAR (kept as text)';
      const acc = byKey.get(key);
      if (!acc) {
        byKey.set(key, own.length > 1 ? { name: col.name, type, kind: 'text', rule: mixedRule, files: [f.file], types: own } : { name: col.name, type, kind: 'same', rule: 'same type', files: [f.file], types: own });
        continue;
      }
      if (own.length > 1) {
        acc.kind = 'text';
        acc.rule = mixedRule;
      }
      const w = widenTypes(acc.type, type);
      if (w.kind !== 'same') acc.rule = w.rule;
      acc.kind = worse(acc.kind, w.kind);
      acc.type = w.type;
      acc.files.push(f.file);
      acc.types.push(...own);
    }
  }
  const columns: MergedColumn[] = [];
  const conflicts: TypeConflict[] = [];
  for (const acc of byKey.values()) {
    columns.push({ name: acc.name, type: acc.type === 'NULL' ? 'VARCHAR' : acc.type, files: acc.files });
    const distinct = new Set(acc.types.map((t) => t.type).filter((t) => t !== 'NULL'));
    if (distinct.size > 1 && acc.kind !== 'same') {
      conflicts.push({ column: acc.name, types: acc.types, resolved: acc.type, kind: acc.kind, rule: acc.rule });
    }
  }
  return { columns, conflicts };
}
