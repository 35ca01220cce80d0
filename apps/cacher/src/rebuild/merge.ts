import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  Lease,
  MergeInput,
  isPartStored,
  retiredMember,
  quoteIdent,
  quoteLiteral,
  type Fragment,
  type TableMeta,
  type TablePart,
} from '@flashduck/core';
import { MEMBER_COLUMN, PartCache, attachParts, closeDuckDB, openDuckDB, partRelation } from '@flashduck/core/duckdb';
import { collectRetired, currentParts } from '../store/fragments.js';
import { publishVersion, readTableState, storeNewPart, type RebuildDeps } from './rebuild-table.js';
import { versionParts, type StoredFragment } from './sources.js';

/** When and how much to merge. */
export interface MergePolicy {
  /** A table with more parts than this gets its small parts merged. */
  readonly maxParts: number;
  /** A merged part grows up to about this many bytes; parts this big are not merged again. */
  readonly maxBytes: number;
  /** A part with at least this share of its rows' members excluded is rewritten without them. */
  readonly excludedShare: number;
}

const signature = (p: TablePart) => JSON.stringify(p.columns.map((c) => [c.name, c.type]));

/**
 * The parts to merge next, or null when the table needs no merge. Like a tiered LSM/MergeTree policy: parts
 * with the same columns are merged smallest first, up to `maxBytes`, while the table has more than `maxParts`;
 * a merged part whose members are mostly excluded is rewritten without them whatever the count.
 */
export function planMerge(parts: readonly TablePart[], policy: MergePolicy): TablePart[] | null {
  const wasteful = parts.filter((p) => p.members > 1 && (p.exclude?.length ?? 0) >= Math.max(1, p.members * policy.excludedShare));
  const groups = new Map<string, TablePart[]>();
  for (const p of parts) {
    if (p.bytes >= policy.maxBytes / 2 && !wasteful.includes(p)) continue;
    groups.set(signature(p), [...(groups.get(signature(p)) ?? []), p]);
  }
  let best: TablePart[] | null = null;
  for (const group of groups.values()) {
    const sorted = [...group].sort((a, b) => a.bytes - b.bytes || a.id.localeCompare(b.id));
    const pick: TablePart[] = [];
    let bytes = 0;
    for (const p of sorted) {
      if (pick.length >= 2 && bytes + p.bytes > policy.maxBytes) break;
      pick.push(p);
      bytes += p.bytes;
    }
    const needed = parts.length > policy.maxParts ? pick.length >= 2 : pick.some((p) => wasteful.includes(p));
    if (needed && (!best || pick.length > best.length)) best = pick;
  }
  return best;
}

/** One file's rows going into a merged part: where they are now, and their member number in the merged part. */
export interface MergeMember {
  readonly path: string;
  readonly part: TablePart;
  readonly member: number;
}

/** The files whose rows the inputs hold (one member per file, even when two files share a part), numbered anew. */
export function mergeMembers(inputs: readonly TablePart[], fragments: ReadonlyMap<string, Fragment>): MergeMember[] {
  const byId = new Map(inputs.map((p) => [p.id, p]));
  const out: MergeMember[] = [];
  for (const [p, f] of [...fragments].sort(([a], [b]) => a.localeCompare(b))) {
    const part = f.part ? byId.get(f.part.id) : undefined;
    if (part) out.push({ path: p, part, member: f.member });
  }
  return out;
}

/**
 * What a merged part holds, as listings of the version merged: every listing of an input. A part several identical
 * files share is listed once per file, and the merged part holds its rows once per file (`mergeMembers` takes every
 * file of an input), however many of those listings the plan took.
 */
export function absorbedParts(listed: readonly TablePart[], inputs: readonly TablePart[]): TablePart[] {
  const ids = new Set(inputs.map((p) => p.id));
  return listed.filter((p) => ids.has(p.id));
}

/** The SELECT that writes a merged part: every member's rows, numbered by its place in `members`. */
export function mergeSelectSql(members: readonly MergeMember[], relationOf: (p: TablePart) => string = partRelation): string {
  const columns = members[0]!.part.columns.map((c) => quoteIdent(c.name)).join(', ');
  const selects: string[] = [];
  const multi = new Map<string, { part: TablePart; cases: [number, number][] }>();
  members.forEach((m, index) => {
    const from = relationOf(m.part);
    if (m.part.members === 1) {
      selects.push(`SELECT ${columns}, ${index}::INTEGER AS ${MEMBER_COLUMN} FROM ${from}`);
      return;
    }
    const g = multi.get(m.part.id) ?? { part: m.part, cases: [] };
    g.cases.push([m.member, index]);
    multi.set(m.part.id, g);
  });
  for (const { part, cases } of multi.values()) {
    const from = relationOf(part);
    const when = cases.map(([from, to]) => `WHEN ${from} THEN ${to}`).join(' ');
    selects.push(
      `SELECT ${columns}, (CASE ${quoteIdent(MEMBER_COLUMN)} ${when} END)::INTEGER AS ${MEMBER_COLUMN} FROM ${from} WHERE ${quoteIdent(MEMBER_COLUMN)} IN (${cases.map(([m]) => m).join(', ')})`,
    );
  }
  return selects.join('\nUNION ALL\n');
}

export type MergeResult =
  | { outcome: 'none' }
  | { outcome: 'busy' }
  | { outcome: 'superseded'; reason: string }
  | { outcome: 'merged'; version: number; inputs: number; files: number; parts: number; bytes: number; rows: number; ms: number };

/**
 * Merges a table's small parts into one (off the request path: it reads stored parts, never data files), then
 * publishes a version with the same rows and fewer parts. Only the publish step takes the build lease, briefly:
 * a build of new files never waits for a merge. Files that changed while the merge ran simply stay out of the
 * merged part (their members are excluded).
 */
export async function mergeTable(
  deps: Pick<RebuildDeps, 'redis' | 'keys' | 'config' | 'log' | 'exportQueue'> & { cache: (table: string) => PartCache; policy: MergePolicy },
  table: string,
): Promise<MergeResult> {
  const { redis, keys, config } = deps;
  const log = deps.log.child({ table, task: 'merge' });
  // The plan needs only the version's part list: most calls (one per table per reconcile) end here.
  if (!planMerge(await currentParts(redis, keys, table), deps.policy)) return { outcome: 'none' };
  const mergeLease = new Lease(redis, { owner: keys.tableMergeLease(table), epoch: keys.tableMergeEpoch(table) }, Math.max(config.leaseMs, 60_000), config.instanceId);
  if (!(await mergeLease.tryAcquire())) return { outcome: 'busy' };
  // Kept for the whole merge, however long it reads: one merge per table at a time. Losing it (a stall, Redis
  // losing its data) is harmless to the answer: the publish re-checks the version under the build lease.
  const renewal = mergeLease.keepRenewed(
    () => log.warn('merge lease lost while merging; another merge of this table may start'),
    (err) => log.warn({ err }, 'merge lease renewal failed'),
  );
  const started = Date.now();
  const workDir = path.join(config.workDir, `${table}-merge-${randomUUID().slice(0, 8)}`);
  try {
    const before = await readTableState(redis, keys, log, table);
    const inputs = before.current ? planMerge(before.current.parts, deps.policy) : null;
    if (!before.current || !inputs) return { outcome: 'none' };
    const members = mergeMembers(inputs, before.fragments);
    if (members.length === 0) return { outcome: 'none' };
    await mkdir(workDir, { recursive: true });
    const cache = deps.cache(table);
    const files = new Map<string, string>();
    for (const p of inputs) files.set(p.id, (await cache.ensure(p)).file);
    const out = path.join(workDir, 'merged.duckdb');
    const db = await openDuckDB({ memoryLimitMb: config.memoryLimitMb, threads: config.threads, tempDir: path.join(workDir, 'spill') });
    let rows: number;
    try {
      await attachParts([db.conn], files);
      await db.conn.run(`ATTACH ${quoteLiteral(out)} AS merged`);
      await db.conn.run(`CREATE TABLE merged.main.part AS ${mergeSelectSql(members)}`);
      rows = Number((await db.conn.runAndReadAll('SELECT count(*) FROM merged.main.part')).getRowsJS()[0]?.[0] ?? 0);
      await db.conn.run('DETACH merged');
    } finally {
      closeDuckDB(db);
    }
    const { part: merged } = await storeNewPart(deps, table, out, { rows, members: members.length, columns: inputs[0]!.columns }, workDir);
    await cache.adopt(merged, out).catch(() => undefined);
    const result = await publishMerge(deps, table, started, inputs, absorbedParts(before.current.parts, inputs), members, merged);
    // A merged part no version lists is collectable at once (collection checks the current version first).
    if (result.outcome !== 'merged') await redis.zadd(keys.tableRetired(table), Date.now(), retiredMember(merged));
    return result;
  } finally {
    renewal.stop();
    await mergeLease.release().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Publishes a merged part under the build lease, against the version current now. */
async function publishMerge(
  deps: Parameters<typeof mergeTable>[0],
  table: string,
  started: number,
  inputs: readonly TablePart[],
  absorbed: readonly TablePart[],
  members: readonly MergeMember[],
  merged: TablePart,
): Promise<MergeResult> {
  const { redis, keys, config } = deps;
  const log = deps.log.child({ table, task: 'merge' });
  const lease = new Lease(redis, { owner: keys.tableBuildLease(table), epoch: keys.tableBuildEpoch(table) }, config.leaseMs, config.instanceId);
  const deadline = Date.now() + 10_000;
  while (!(await lease.tryAcquire())) {
    if (Date.now() > deadline) return { outcome: 'superseded', reason: 'builds held the table for 10 s' };
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    const now = await readTableState(redis, keys, log, table);
    const current = now.current;
    if (!current) return { outcome: 'superseded', reason: 'the table was dropped' };
    const listed = new Set(current.parts.map((p) => p.id));
    if (!inputs.every((p) => listed.has(p.id))) return { outcome: 'superseded', reason: 'a merged part left the table meanwhile' };
    if (!(await isPartStored(redis, keys, merged))) return { outcome: 'superseded', reason: 'the merged part was collected' };
    // A file still where it was when the merge began takes its member of the merged part; a file that changed
    // meanwhile keeps its own new part (its member stays excluded).
    const index = new Map(members.map((m, i) => [`${m.path}|${m.part.id}/${m.member}`, i]));
    const fragments = new Map<string, Fragment>();
    const holding: StoredFragment[] = [];
    for (const [p, f] of now.fragments) {
      const i = f.part ? index.get(`${p}|${f.part.id}/${f.member}`) : undefined;
      const next: Fragment = i === undefined ? f : { ...f, part: merged, member: i };
      fragments.set(p, next);
      if (next.part) holding.push(next as StoredFragment);
    }
    const version = await redis.incr(keys.tableSeq(table));
    const parts = versionParts(holding);
    const meta: TableMeta = { ...current, version, parts, bytes: parts.reduce((n, p) => n + p.bytes, 0), updatedAt: Date.now(), buildMs: Date.now() - started, cause: 'merge', merged: { part: merged.id, inputs: absorbed.map((p) => MergeInput.parse(p)) } };
    if (!(await publishVersion(deps, table, lease, meta, current.sourceGen, fragments, [merged]))) return { outcome: 'superseded', reason: 'publish refused' };
    await collectRetired(redis, keys, table, config.retainMs, Date.now(), config.retention);
    const result = { outcome: 'merged' as const, version, inputs: inputs.length, files: members.length, parts: parts.length, bytes: merged.bytes, rows: merged.rows, ms: Date.now() - started };
    log.info(result, 'parts merged');
    return result;
  } finally {
    await lease.release().catch(() => undefined);
  }
}
