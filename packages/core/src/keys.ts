/**
 * Every Redis key, stream, channel and queue name FlashDuck uses. No other module builds one.
 *
 * Layout for prefix `fd` and table `orders` (per-table keys carry the table as a hash tag, so every
 * multi-key step on one table stays in one Redis Cluster slot):
 *
 * ```
 * fd:tables                      SET    table names                 writer: monitor (add), cacher (remove on drop)
 * fd:folder-record               HASH   id, state (recording|complete), since   writer: monitor leader; readers: query-api, exporter, cli
 * fd:heartbeats                  HASH   "<component>:<instance>" → Heartbeat   writer: every component; readers: status, console
 * fd:ignored-files               STRING IgnoredFiles: files in the data folder with an extension FlashDuck does not read   writer: monitor leader; readers: query-api, cli
 * fd:events                      PUBSUB snapshot/drop hints         writer: cacher (inside the publish script); readers: query-api
 * fd:parts-stored                PUBSUB a part just stored, before a version lists it (replicas prefetch it)   writer: cacher; readers: query-api
 * fd:{lease:<name>}:owner        STRING "<token>|<epoch>" with TTL  writer: the lease holder (monitor leader, exporter per table)
 * fd:{lease:<name>}:epoch        STRING fencing counter
 * fd:{orders}:files              HASH   path → FileFingerprint      writer: monitor leader; reader: cacher
 * fd:{orders}:state              HASH   gen, epoch, scannedAt       writer: monitor leader; readers: cacher, status
 * fd:{orders}:seq                STRING snapshot version counter    writer: cacher
 * fd:{orders}:meta               HASH   current version: its list of parts + metadata   writer: cacher (publish script); readers: query-api, exporter, cli
 * fd:{orders}:frags              HASH   path → Fragment (the part and member holding the file's rows)   writer/reader: cacher
 * fd:{orders}:versions           HASH   version → TableMeta: the retained versions (FLASHDUCK_RETAIN_VERSIONS / _MS)   writer: cacher (publish script, pruning); readers: query-api
 * fd:{orders}:retired            ZSET   "<part id>:<chunks>" → when it left the current version (collected after a grace period)
 * fd:{part:<id>}:<i>             STRING chunk i of part <id> (content-addressed; hashes on its own id, so on Redis Cluster
 *                                       a table's parts spread over every node)   writer: cacher; readers: query-api, exporter, cacher
 * fd:{orders}:merge              STRING merge lease "<token>|<epoch>"   writer: cacher
 * fd:{orders}:merge-epoch        STRING merge lease fencing counter
 * fd:{orders}:build              STRING rebuild lease "<token>|<epoch>"   writer: cacher
 * fd:{orders}:build-epoch        STRING rebuild lease fencing counter
 * fd:{orders}:exported           HASH   last export: version, rows, bytes, at, path, ms   writer: exporter; readers: status, console
 * fd:{orders}:export             STRING export lease "<token>|<epoch>"  writer: exporter
 * fd:{orders}:export-epoch       STRING export lease fencing counter
 * fd:write-tables                SET    tables that have a writes stream      writer: query-api; reader: write-applier
 * fd:writes                      PUBSUB wake-up hint after an enqueue  writer: query-api (in the enqueue script); readers: write-applier
 * fd:scan-hints                  PUBSUB files a write-applier just replaced atomically   writer: write-applier; reader: monitor
 * fd:{orders}:writes             STREAM upsert/delete entries       writer: query-api; reader: write-applier group "appliers"
 * fd:{orders}:write-state        HASH   stream id → WriteState      writer: query-api (pending), write-applier (applied/failed)
 * fd:{orders}:idem:<hash>       STRING "<request fingerprint>|<stream id>" with TTL: an Idempotency-Key's first write   writer: query-api (in the enqueue script)
 * fd:{orders}:writes-applied     STRING last stream id applied to the files   writer: write-applier (fenced by the apply lease)
 * fd:{orders}:writes-dead        STREAM dead-lettered entries with their reason   writer: write-applier
 * fd:{orders}:apply              STRING apply lease "<token>|<epoch>"  writer: write-applier
 * fd:{orders}:apply-epoch        STRING apply lease fencing counter
 * fd:{q}:<queue>:*               BullMQ queues (prefix "fd:{q}", one slot for all queues)
 * ```
 */
export interface Keys {
  readonly prefix: string;
  /** SET of known table names. */
  readonly tables: string;
  /** HASH marking that Redis holds a complete record of the folder (gone when Redis lost its data). */
  readonly folderRecord: string;
  /** HASH of component heartbeats. */
  readonly heartbeats: string;
  /** Pub/sub channel for snapshot hints (a wake-up only; state lives in `meta`). */
  readonly events: string;
  /** Files in the data folder FlashDuck does not read (unknown extensions), as the last scan found them. */
  readonly ignoredFiles: string;
  /** Pub/sub channel announcing a part as soon as it is stored (a prefetch hint; no state). */
  readonly partsStored: string;
  /** BullMQ prefix (carries a hash tag so every queue key shares one slot). */
  readonly bullPrefix: string;
  /** Owner key of a named lease. */
  leaseOwner(name: string): string;
  /** Fencing counter of a named lease. */
  leaseEpoch(name: string): string;
  tableFiles(table: string): string;
  tableState(table: string): string;
  tableMeta(table: string): string;
  tableSeq(table: string): string;
  tableRetired(table: string): string;
  tableFragments(table: string): string;
  /** Chunk `index` of part `id` (keyed by the part alone: it is not in its table's slot). */
  partChunk(id: string, index: number): string;
  tableMergeLease(table: string): string;
  tableMergeEpoch(table: string): string;
  tableBuildLease(table: string): string;
  tableBuildEpoch(table: string): string;
  tableExported(table: string): string;
  tableExportLease(table: string): string;
  tableExportEpoch(table: string): string;
  /** SET of tables that have a writes stream. */
  readonly writeTables: string;
  /** Pub/sub wake-up for write-appliers. */
  readonly writesChannel: string;
  /** Pub/sub hint to the monitor: files replaced atomically (complete: no settle wait), scan now. */
  readonly scanHints: string;
  tableWrites(table: string): string;
  tableWriteState(table: string): string;
  /** The retained versions of a table (version → TableMeta JSON). */
  tableVersions(table: string): string;
  /** The record of one Idempotency-Key (`keyHash`: a hash of the key) of writes to the table. */
  tableIdempotency(table: string, keyHash: string): string;
  tableWritesApplied(table: string): string;
  tableWritesDead(table: string): string;
  tableApplyLease(table: string): string;
  tableApplyEpoch(table: string): string;
}

/** Consumer group of the write-appliers on every writes stream. */
export const WRITE_GROUP = 'appliers';

/** Queue names (BullMQ), under {@link Keys.bullPrefix}. */
export const QUEUES = {
  /** monitor → cacher: one job per changed table (ScanDiff). */
  scanDiffs: 'scan-diffs',
  /** cacher → exporter: one job per published snapshot (SnapshotEvent). */
  snapshots: 'snapshots',
  /** Messages that failed to decode, kept for inspection. */
  deadLetters: 'dead-letters',
} as const;

const PREFIX_RE = /^[A-Za-z0-9_.-]+$/;

/** Builds the key set for a prefix. The prefix may not contain `{`, `}` or `:`. */
export function createKeys(prefix: string): Keys {
  if (!PREFIX_RE.test(prefix)) {
    throw new Error(`invalid key prefix "${prefix}": use letters, digits, "_", "." or "-"`);
  }
  const t = (table: string, rest: string) => `${prefix}:{${table}}:${rest}`;
  return {
    prefix,
    tables: `${prefix}:tables`,
    folderRecord: `${prefix}:folder-record`,
    heartbeats: `${prefix}:heartbeats`,
    events: `${prefix}:events`,
    partsStored: `${prefix}:parts-stored`,
    ignoredFiles: `${prefix}:ignored-files`,
    bullPrefix: `${prefix}:{q}`,
    leaseOwner: (name) => `${prefix}:{lease:${name}}:owner`,
    leaseEpoch: (name) => `${prefix}:{lease:${name}}:epoch`,
    tableFiles: (table) => t(table, 'files'),
    tableState: (table) => t(table, 'state'),
    tableMeta: (table) => t(table, 'meta'),
    tableSeq: (table) => t(table, 'seq'),
    tableRetired: (table) => t(table, 'retired'),
    tableFragments: (table) => t(table, 'frags'),
    partChunk: (id, index) => `${prefix}:{part:${id}}:${index}`,
    tableMergeLease: (table) => t(table, 'merge'),
    tableMergeEpoch: (table) => t(table, 'merge-epoch'),
    tableBuildLease: (table) => t(table, 'build'),
    tableBuildEpoch: (table) => t(table, 'build-epoch'),
    tableExported: (table) => t(table, 'exported'),
    tableExportLease: (table) => t(table, 'export'),
    tableExportEpoch: (table) => t(table, 'export-epoch'),
    writeTables: `${prefix}:write-tables`,
    writesChannel: `${prefix}:writes`,
    scanHints: `${prefix}:scan-hints`,
    tableWrites: (table) => t(table, 'writes'),
    tableWriteState: (table) => t(table, 'write-state'),
    tableVersions: (table) => t(table, 'versions'),
    tableIdempotency: (table, keyHash) => t(table, `idem:${keyHash}`),
    tableWritesApplied: (table) => t(table, 'writes-applied'),
    tableWritesDead: (table) => t(table, 'writes-dead'),
    tableApplyLease: (table) => t(table, 'apply'),
    tableApplyEpoch: (table) => t(table, 'apply-epoch'),
  };
}

/** The hash tag Redis Cluster uses to place a key: the text between the first `{` and the next `}`. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  if (close <= open + 1) return key;
  return key.slice(open + 1, close);
}
