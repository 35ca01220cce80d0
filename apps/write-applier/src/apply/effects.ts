import { normalizeType, typeFamily, widenTypes } from '@flashduck/schema';

/** One queued write, decoded. */
export interface Write {
  readonly id: string;
  readonly op: 'upsert' | 'delete';
  readonly key: readonly string[];
  readonly rows: readonly Record<string, unknown>[];
}

/** The net effect of a batch on one key, in stream order. */
export type Effect =
  | { readonly op: 'delete' }
  /** `fresh`: the key was deleted earlier in the batch, so columns not given are NULL rather than kept. */
  | { readonly op: 'upsert'; readonly row: Readonly<Record<string, unknown>>; readonly fresh: boolean };

/** The text of a key value: numbers, strings and booleans that print the same are the same key. */
export function keyText(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

/** Canonical form of a row's key (the values of the key columns as text, in key order). */
export function canonicalKey(key: readonly string[], row: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(key.map((k) => keyText(row[k])));
}

/**
 * Maps each row's column names onto the table's spelling (names match case-insensitively, like SQL
 * identifiers); a column the table does not have keeps the spelling it was sent with.
 */
export function respell(row: Readonly<Record<string, unknown>>, spelling: ReadonlyMap<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[spelling.get(k.toLowerCase()) ?? k] = v;
  return out;
}

/**
 * Folds writes (all with the same key columns) into one effect per key, in stream order: later
 * values of a column win; an upsert after a delete starts from an empty row; a delete wins over
 * anything before it.
 */
export function computeEffects(writes: readonly Write[], key: readonly string[]): Map<string, Effect> {
  const effects = new Map<string, Effect>();
  for (const w of writes) {
    for (const row of w.rows) {
      const k = canonicalKey(key, row);
      const prev = effects.get(k);
      if (w.op === 'delete') {
        effects.set(k, { op: 'delete' });
      } else if (!prev) {
        effects.set(k, { op: 'upsert', row, fresh: false });
      } else if (prev.op === 'delete') {
        effects.set(k, { op: 'upsert', row, fresh: true });
      } else {
        effects.set(k, { op: 'upsert', row: { ...prev.row, ...row }, fresh: prev.fresh });
      }
    }
  }
  return effects;
}

/** The DuckDB type a JSON value suggests. */
export function jsonTypeOf(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'boolean') return 'BOOLEAN';
  if (typeof value === 'number') return Number.isInteger(value) ? 'BIGINT' : 'DOUBLE';
  if (typeof value === 'string') return 'VARCHAR';
  return 'JSON';
}

const INTEGER_TEXT = /^[+-]?\d+$/;
const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Whether `value` can be stored in a column of `type`: as is, as text that parses as that type, or by
 * widening the column (an integer column receiving 1.5 becomes DOUBLE, per packages/schema). Returns
 * the column type to write, or the reason it cannot be stored — a value is never turned into NULL.
 */
export function fitValue(column: string, type: string, value: unknown): { type: string } | { error: string } {
  if (value === null || value === undefined) return { type };
  const t = normalizeType(type);
  const shown = typeof value === 'string' ? `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"` : JSON.stringify(value);
  const refuse = () => ({ error: `column "${column}" is ${t}; ${shown} is not a ${t} (write a matching value, or change the column's type in the files)` });
  if (t === 'VARCHAR' || t === 'JSON' || t === 'NULL') return { type: t === 'NULL' ? jsonTypeOf(value) : t };
  const widen = (valueType: string) => {
    const w = widenTypes(t, valueType);
    return w.kind === 'text' ? refuse() : { type: w.type };
  };
  if (typeFamily(t) === 'integer') {
    if (typeof value === 'number') return Number.isInteger(value) ? { type: t } : widen('DOUBLE');
    if (typeof value === 'string' && INTEGER_TEXT.test(value.trim())) return { type: t };
    if (typeof value === 'string' && NUMBER_TEXT.test(value.trim())) return widen('DOUBLE');
    return refuse();
  }
  if (t.startsWith('DECIMAL') || t === 'DOUBLE' || t === 'FLOAT') {
    if (typeof value === 'number') return t === 'FLOAT' || t.startsWith('DECIMAL') ? widen('DOUBLE') : { type: t };
    if (typeof value === 'string' && NUMBER_TEXT.test(value.trim())) return { type: t };
    return refuse();
  }
  if (t === 'BOOLEAN') {
    if (typeof value === 'boolean') return { type: t };
    if (typeof value === 'string' && /^(true|false|t|f|1|0|yes|no)$/i.test(value.trim())) return { type: t };
    return refuse();
  }
  if (t === 'DATE' || t.startsWith('TIMESTAMP')) {
    if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$/.test(value.trim())) {
      return t === 'DATE' && value.trim().length > 10 ? widen('TIMESTAMP') : { type: t };
    }
    return refuse();
  }
  if (t === 'TIME') return typeof value === 'string' && /^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value.trim()) ? { type: t } : refuse();
  if (t.endsWith(']')) return Array.isArray(value) ? { type: t } : refuse();
  if (/^(STRUCT|MAP)\(/.test(t)) return typeof value === 'object' && !Array.isArray(value) ? { type: t } : refuse();
  // UUID, BLOB, INTERVAL and the rest: text in DuckDB's own syntax.
  return typeof value === 'string' ? { type: t } : refuse();
}
