import { z } from 'zod';

/**
 * Message and stored-record schemas. Every message carries `v`; a reader decodes with
 * {@link decode} and treats a failure as a bad message (logged with its id, dead-lettered, skipped).
 */

/** What the monitor records of a data file: changes in any field mean the file changed. */
export const FileFingerprint = z.object({
  size: z.number().int().nonnegative(),
  mtimeMs: z.number(),
  ino: z.number(),
  dev: z.number(),
  /** Set when the monitor will not let the file be read (a symlink leaving the data dir, a FIFO). */
  refused: z.string().optional(),
});
export type FileFingerprint = z.infer<typeof FileFingerprint>;

/** monitor → cacher: a table's files changed (BullMQ job data). */
export const ScanDiff = z.object({
  v: z.literal(1),
  table: z.string().min(1),
  /** Manifest generation this diff produced. */
  gen: z.number().int().positive(),
  at: z.number(),
  added: z.array(z.string()),
  removed: z.array(z.string()),
  modified: z.array(z.string()),
  renamed: z.array(z.object({ from: z.string(), to: z.string() })),
  /** Number of files in the table after the change. */
  files: z.number().int().nonnegative(),
});
export type ScanDiff = z.infer<typeof ScanDiff>;

/** cacher → everyone: a table has a new snapshot, or was dropped (pub/sub hint and exporter job data). */
export const SnapshotEvent = z.object({
  v: z.literal(1),
  type: z.enum(['snapshot', 'dropped']),
  table: z.string().min(1),
  version: z.number().int().nonnegative(),
  /** The file manifest generation the snapshot was built from (absent from older cachers). */
  sourceGen: z.number().int().nonnegative().optional(),
  /** The cacher instance that built it (absent from older cachers). */
  builtBy: z.string().optional(),
  at: z.number(),
});
export type SnapshotEvent = z.infer<typeof SnapshotEvent>;

/** A component's liveness record, refreshed every few seconds. */
export const Heartbeat = z.object({
  v: z.literal(1),
  component: z.string(),
  instance: z.string(),
  host: z.string(),
  pid: z.number().int(),
  startedAt: z.number(),
  lastLoopAt: z.number(),
  /** When this record was written; the instance is gone once `beatAt + ttlMs` has passed. */
  beatAt: z.number(),
  ttlMs: z.number().int().positive(),
  /** Component-specific figures: lag, queue depths, role. */
  info: z.record(z.string(), z.unknown()),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

/**
 * Encodings a part can be stored in (`CACHER_SNAPSHOT_FORMAT`): a DuckDB database file (the default: replicas
 * attach it as it is; gzip-compressed when small), zstd Parquet, Arrow IPC or newline-delimited JSON. Replicas, the
 * exporter and merges turn other encodings into a local DuckDB file once, when they fetch the part.
 */
export const SNAPSHOT_FORMATS = ['duckdb', 'parquet', 'arrow', 'json'] as const;
export type SnapshotFormat = (typeof SNAPSHOT_FORMATS)[number];

export const ColumnInfo = z.object({ name: z.string(), type: z.string(), files: z.array(z.string()).optional() });
export type ColumnInfo = z.infer<typeof ColumnInfo>;

export const FileError = z.object({
  file: z.string(),
  message: z.string(),
  /** Set when the file was read but rows of it were skipped (`ignore_errors`): how many, and the first lines. */
  skipped: z.object({ rows: z.number().int().nonnegative(), lines: z.array(z.object({ line: z.number(), message: z.string() })) }).optional(),
});
export type FileError = z.infer<typeof FileError>;

export const SnapshotFile = z.object({
  path: z.string(),
  size: z.number(),
  mtimeMs: z.number(),
  rows: z.number(),
  format: z.string(),
  /** True when the rows come from an earlier readable version of a file that now fails. */
  stale: z.boolean().optional(),
  /** Rows of the file skipped by `ignore_errors`. */
  skipped: z.number().int().nonnegative().optional(),
});
export type SnapshotFile = z.infer<typeof SnapshotFile>;

/**
 * An immutable part: the rows of one source file, or of several merged (then a column `__fd_member` numbers
 * each row's member file, 0 … members-1). Stored once in Redis under its content address, whatever versions
 * list it.
 */
export const PartRef = z.object({
  /** Content address: a hash of the table name, the chunk size and the stored bytes. */
  id: z.string().regex(/^[0-9a-f]{16,64}$/),
  /** How the bytes are encoded. */
  format: z.enum(SNAPSHOT_FORMATS),
  /** Set when the stored bytes are gzip-compressed (small DuckDB files: their empty blocks shrink to nothing). */
  compression: z.literal('gzip').optional(),
  chunks: z.number().int().positive(),
  bytes: z.number().int().nonnegative(),
  /** Rows stored (every member's). */
  rows: z.number().int().nonnegative(),
  /** Member files whose rows the part holds (1 for a part read from one file). */
  members: z.number().int().positive(),
  columns: z.array(z.object({ name: z.string(), type: z.string() })),
});
export type PartRef = z.infer<typeof PartRef>;

/** cacher → query-api: a part was stored for a version being built (pub/sub hint; replicas may fetch it early). */
export const PartStored = z.object({
  v: z.literal(1),
  table: z.string().min(1),
  part: PartRef,
  at: z.number(),
});
export type PartStored = z.infer<typeof PartStored>;

/** monitor → everyone: files in the data folder with an extension FlashDuck does not read (the first 1,000). */
export const IgnoredFiles = z.object({
  v: z.literal(1),
  files: z.array(z.string()),
  total: z.number().int().nonnegative(),
  at: z.number(),
});
export type IgnoredFiles = z.infer<typeof IgnoredFiles>;

/** A part as one table version lists it. */
export const TablePart = PartRef.extend({
  /** Members whose rows this version does not serve (their file changed or left since the merge). */
  exclude: z.array(z.number().int().nonnegative()).optional(),
});
export type TablePart = z.infer<typeof TablePart>;

/** A part a merge replaced, as its version lists it, without its columns (the merged part's; parsing drops them). */
export const MergeInput = TablePart.omit({ columns: true });
export type MergeInput = z.infer<typeof MergeInput>;

/** Stored in `meta`: the table's current version, a list of parts (one atomic step replaces it). */
export const TableMeta = z.object({
  v: z.literal(2),
  table: z.string(),
  version: z.number().int().positive(),
  parts: z.array(TablePart),
  /** Bytes of every part listed (what a replica holds for this version). */
  bytes: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  columns: z.array(ColumnInfo),
  files: z.array(SnapshotFile),
  errors: z.array(FileError),
  conflicts: z.array(z.unknown()),
  /** Manifest generation the version was built from. */
  sourceGen: z.number().int().nonnegative(),
  buildMs: z.number(),
  updatedAt: z.number(),
  /** What made this version: a build from the folder, or a merge of parts (same rows as the version before). */
  cause: z.enum(['build', 'merge']).optional(),
  /**
   * On a merge's version: the merged part `part` holds exactly the rows of `inputs` (the parts it replaced, as the
   * version before listed them, columns as the merged part's). An exporter joins the Parquet pieces it kept for
   * them instead of encoding the merged rows again.
   */
  merged: z.object({ part: z.string(), inputs: z.array(MergeInput) }).optional(),
  /** DuckDB library version that wrote the parts. */
  engine: z.string(),
});
export type TableMeta = z.infer<typeof TableMeta>;

/**
 * Stored in `frags`: where a file's rows are, as read once, reused while the file is unchanged or unreadable.
 * A fragment without a part only remembers that this version of the file failed to read.
 */
export const Fragment = z.object({
  v: z.literal(2),
  path: z.string(),
  fingerprint: FileFingerprint,
  /** The part holding the file's rows, and the file's member number in it. */
  part: PartRef.optional(),
  member: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  /** `mixed`: the scalar types a JSON column of this file held before it became VARCHAR. */
  columns: z.array(z.object({ name: z.string(), type: z.string(), mixed: z.array(z.string()).optional() })),
  format: z.string(),
  /** Hash of the table's reader options (`_table.yaml`) the file was read with; absent: none. */
  options: z.string().optional(),
  /** Rows the reader skipped (`ignore_errors`), with the first lines and reasons. */
  skipped: z.object({ rows: z.number().int().nonnegative(), lines: z.array(z.object({ line: z.number(), message: z.string() })) }).optional(),
  /** Set when the current version of the file fails to read (the rows above are from an earlier one). */
  failed: z.object({ fingerprint: FileFingerprint, message: z.string(), options: z.string().optional() }).optional(),
});
export type Fragment = z.infer<typeof Fragment>;

/** A row of a write: a JSON object. */
export const WriteRow = z.record(z.string(), z.unknown());

/** An upsert or delete as queued in a table's writes stream (fields of one stream entry). */
export const WriteEntry = z.object({
  v: z.literal(1),
  op: z.enum(['upsert', 'delete']),
  /** Key columns: rows match on all of them. */
  key: z.array(z.string().min(1)).min(1),
  rows: z.array(WriteRow),
  at: z.number(),
});
export type WriteEntry = z.infer<typeof WriteEntry>;

/** Where a write is (`fd:{t}:write-state`, by stream id). `visible` is derived by query-api from the served snapshot. */
export const WriteState = z.object({
  v: z.literal(1),
  status: z.enum(['pending', 'applied', 'failed']),
  op: z.enum(['upsert', 'delete']),
  rows: z.number().int().nonnegative(),
  at: z.number(),
  appliedAt: z.number().optional(),
  /** Files the write changed, with the mtime they got: a snapshot holding these versions contains the write. */
  files: z.array(z.object({ path: z.string(), mtimeMs: z.number() })).optional(),
  error: z.string().optional(),
});
export type WriteState = z.infer<typeof WriteState>;

/** write-applier → monitor: these files were just replaced atomically and are complete (a hint). */
export const ScanHint = z.object({
  v: z.literal(1),
  files: z.array(z.object({ path: z.string(), fingerprint: FileFingerprint })),
});
export type ScanHint = z.infer<typeof ScanHint>;

/** Result of decoding: the value, or why it is not one. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/** Decodes a JSON string (or already-parsed value) with a schema. Never throws. */
export function decode<T>(schema: z.ZodType<T>, input: unknown): Decoded<T> {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      return { ok: false, error: `not JSON: ${(err as Error).message}` };
    }
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, error: z.prettifyError(parsed.error).replace(/\n/g, '; ') };
}

/** Encodes a message after checking it against its schema (a bug here should fail loudly, at the writer). */
export function encode<T>(schema: z.ZodType<T>, value: T): string {
  return JSON.stringify(schema.parse(value));
}
