import { AppError, quoteIdent, type TableMeta, type TablePart } from '@flashduck/core';
import type { PartColumn, SelectedPart } from '@flashduck/core/duckdb';
import { widenTypes } from '@flashduck/schema';

/** The column a change row names its kind in: `insert`, `delete` or (rows paired by a key) `update`. */
export const CHANGE_COLUMN = '_change';
/** Prefix of the columns an `update` row carries its old values in. */
export const OLD_PREFIX = '_old_';

/** What two versions do not share: the rows only the first serves (`removed`) and only the second (`added`). */
export interface ChangedParts {
  readonly removed: SelectedPart[];
  readonly added: SelectedPart[];
}

const excludeKey = (p: TablePart) => [...(p.exclude ?? [])].sort((a, b) => a - b).join(',');

/**
 * The parts (or members of parts) one version serves and the other does not. A part both list with the same
 * members cancels out, so two versions that share most parts differ by what changed: a changed file's old and
 * new part, an appended file's part, or the members a merged part serves in one version and not the other.
 * Counted as multisets (a version may list one part twice).
 */
export function changedParts(from: readonly TablePart[], to: readonly TablePart[]): ChangedParts {
  const unmatched = new Map<string, TablePart[]>();
  for (const q of to) {
    const k = `${q.id}|${excludeKey(q)}`;
    unmatched.set(k, [...(unmatched.get(k) ?? []), q]);
  }
  const fromLeft: TablePart[] = [];
  for (const p of from) {
    const same = unmatched.get(`${p.id}|${excludeKey(p)}`);
    if (same?.length) same.pop();
    else fromLeft.push(p);
  }
  const toLeft = [...unmatched.values()].flat();
  const removed: SelectedPart[] = [];
  const added: SelectedPart[] = [];
  for (const p of fromLeft) {
    const at = toLeft.findIndex((q) => q.id === p.id);
    if (at < 0 || p.members === 1) {
      removed.push(p);
      continue;
    }
    // One merged part, other members served: only the members served in one version and not the other differ.
    const q = toLeft.splice(at, 1)[0]!;
    const inFrom = new Set(p.exclude ?? []);
    const inTo = new Set(q.exclude ?? []);
    const gone = [...inTo].filter((m) => !inFrom.has(m)).sort((a, b) => a - b);
    const back = [...inFrom].filter((m) => !inTo.has(m)).sort((a, b) => a - b);
    if (gone.length) removed.push({ ...p, exclude: undefined, include: gone });
    if (back.length) added.push({ ...q, exclude: undefined, include: back });
  }
  added.push(...toLeft);
  return { removed, added };
}

/** The columns of a change feed: the newer version's, then those only the older has; a type both have widened. */
export function changeColumns(from: TableMeta, to: TableMeta): PartColumn[] {
  const out = new Map<string, PartColumn>();
  for (const c of to.columns) out.set(c.name.toLowerCase(), { name: c.name, type: c.type });
  for (const c of from.columns) {
    const have = out.get(c.name.toLowerCase());
    out.set(c.name.toLowerCase(), have ? { name: have.name, type: widenTypes(c.type, have.type).type } : { name: c.name, type: c.type });
  }
  return [...out.values()];
}

/** Key columns named in a request (`key=a,b`), matched to the table's columns case-insensitively. */
export function changeKey(raw: unknown, table: string, columns: readonly PartColumn[]): string[] {
  if (raw === undefined || raw === '') return [];
  if (typeof raw !== 'string') throw new AppError('bad_request', '"key" must be a column name, or several separated by commas');
  return raw.split(',').map((name) => {
    const col = columns.find((c) => c.name.toLowerCase() === name.trim().toLowerCase());
    if (!col) throw new AppError('bad_request', `"key": table "${table}" has no column "${name.trim()}" (its columns: ${columns.map((c) => c.name).join(', ')})`);
    return col.name;
  });
}

/**
 * The SELECT of a change feed over two relations holding the rows only the older version serves (`removedRel`)
 * and only the newer serves (`addedRel`): every row that differs, as a multiset (a row both sides hold the same
 * number of times cancels), with `_change` = `delete` | `insert`. With key columns, a key deleted once and
 * inserted once becomes one `update` row: the new values, and `_old_<column>` the old value of every other
 * column; rows come ordered by the key (then the kind of change and the other columns). The multiset difference is one GROUP BY over both sides counting each
 * distinct row (+1 added, -1 removed), expanded back to that many rows: several times faster in DuckDB than
 * EXCEPT ALL both ways (`docs/BENCHMARKS.md`), with the same answer (NULLs and NaNs compare equal).
 */
export function changesSql(
  table: string,
  columns: readonly PartColumn[],
  key: readonly string[],
  removedRel: string,
  addedRel: string,
  /** Which sides hold rows at all: with one side empty nothing can cancel, and its rows are the answer as they are. */
  sides: { removed: boolean; added: boolean } = { removed: true, added: true },
): string {
  const taken = new Set(columns.map((c) => c.name.toLowerCase()));
  const others = columns.filter((c) => !key.includes(c.name));
  const reserved = [CHANGE_COLUMN, ...(key.length ? others.map((c) => `${OLD_PREFIX}${c.name}`) : [])];
  const clash = reserved.find((r) => taken.has(r.toLowerCase()));
  if (clash) throw new AppError('bad_request', `table "${table}" has a column named "${clash}", which the change feed uses for itself; select the columns you need from the two versions with a pinned query instead`);
  const q = quoteIdent;
  const noOld = others.map((c) => `CAST(NULL AS ${c.type}) AS ${q(OLD_PREFIX + c.name)}`);
  const tail = (kind: string) => [`'${kind}' AS ${q(CHANGE_COLUMN)}`, ...(key.length ? noOld : [])].join(', ');
  if (!sides.removed || !sides.added) {
    // An append (or only removals): every row of the one side, no grouping.
    const [rel, kind] = sides.added ? [addedRel, 'insert'] : [removedRel, 'delete'];
    const order = key.length ? ` ORDER BY ${[...key, ...others.map((c) => c.name)].map(q).join(', ')}` : '';
    return `SELECT *, ${tail(kind)} FROM ${rel}${sides.added || sides.removed ? '' : ' WHERE false'}${order}`;
  }
  const counted = [
    `u AS (SELECT *, 1 AS __fd_side FROM ${addedRel} UNION ALL SELECT *, -1 AS __fd_side FROM ${removedRel})`,
    `  g AS (SELECT * EXCLUDE (__fd_side), sum(__fd_side)::BIGINT AS __fd_n FROM u GROUP BY ALL HAVING sum(__fd_side) <> 0)`,
  ].join(',\n');
  if (key.length === 0) {
    return `WITH ${counted}\nSELECT * EXCLUDE (__fd_n, __fd_k), CASE WHEN __fd_n > 0 THEN 'insert' ELSE 'delete' END AS ${q(CHANGE_COLUMN)} FROM g, range(abs(g.__fd_n)) AS r(__fd_k)`;
  }
  const diff = [
    counted,
    `  d AS (SELECT * EXCLUDE (__fd_n, __fd_k) FROM g, range(-g.__fd_n) AS r(__fd_k) WHERE g.__fd_n < 0)`,
    `  i AS (SELECT * EXCLUDE (__fd_n, __fd_k) FROM g, range(g.__fd_n) AS r(__fd_k) WHERE g.__fd_n > 0)`,
  ].join(',\n');
  const byKey = key.map(q).join(', ');
  const sameKey = (a: string, b: string) => key.map((k) => `${a}.${q(k)} = ${b}.${q(k)}`).join(' AND ');
  const cols = (alias: string) => columns.map((c) => `${alias}.${q(c.name)}`).join(', ');
  const paired = (alias: string, other: string) => `${alias}.__fd_n = 1 AND EXISTS (SELECT 1 FROM ${other} o WHERE o.__fd_n = 1 AND ${sameKey('o', alias)})`;
  return [
    `WITH ${diff},`,
    `  dn AS (SELECT *, count(*) OVER (PARTITION BY ${byKey}) AS __fd_n FROM d),`,
    `  inn AS (SELECT *, count(*) OVER (PARTITION BY ${byKey}) AS __fd_n FROM i)`,
    `SELECT ${[cols('n'), `'update' AS ${q(CHANGE_COLUMN)}`, ...others.map((c) => `o.${q(c.name)} AS ${q(OLD_PREFIX + c.name)}`)].join(', ')}`,
    `  FROM inn n JOIN dn o ON ${sameKey('n', 'o')} WHERE n.__fd_n = 1 AND o.__fd_n = 1`,
    `UNION ALL`,
    `SELECT ${cols('n')}, ${tail('insert')} FROM inn n WHERE NOT (${paired('n', 'dn')})`,
    `UNION ALL`,
    `SELECT ${cols('n')}, ${tail('delete')} FROM dn n WHERE NOT (${paired('n', 'inn')})`,
    `ORDER BY ${[byKey, q(CHANGE_COLUMN), ...others.map((c) => q(c.name))].join(', ')}`,
  ].join('\n');
}
