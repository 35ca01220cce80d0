import { createHash } from 'node:crypto';
import {
  AppError,
  LuaScript,
  WriteEntry,
  WriteState,
  decode,
  encode,
  isTableName,
  waitForReplicas,
  type Keys,
  type RedisClient,
  type TableMeta,
} from '@flashduck/core';

const enqueueScript = LuaScript.load('write-enqueue-3');

/** A write id is "<table>.<stream id>": the table tells where to look, the stream id orders it. */
export function parseWriteId(writeId: string): { table: string; id: string } {
  const m = /^([a-z_][a-z0-9_]*)\.(\d+-\d+)$/.exec(writeId);
  if (!m || !isTableName(m[1]!)) throw new AppError('not_found', `"${writeId}" is not a write id (expected <table>.<number>-<number>)`);
  return { table: m[1]!, id: m[2]! };
}

/** Validates an upsert/delete body; the message names the first problem and where it is. */
export function validateWrite(
  op: 'upsert' | 'delete',
  table: string,
  body: unknown,
  existing: TableMeta | undefined,
): { key: string[]; rows: Record<string, unknown>[] } {
  if (!isTableName(table)) {
    throw new AppError('bad_request', `"${table}" is not a table name: use lower-case letters, digits and "_", starting with a letter or "_"`);
  }
  if (op === 'delete' && !existing) throw new AppError('not_found', `no table named "${table}" to delete from`);
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new AppError('bad_request', 'the body must be a JSON object: {"key": [...], "rows": [...]}');
  const b = body as { key?: unknown; rows?: unknown };
  const unknown = Object.keys(b).filter((k) => k !== 'key' && k !== 'rows');
  if (unknown.length) throw new AppError('bad_request', `unknown field "${unknown[0]}" in the body: a write has "key" and "rows"`);
  const key = typeof b.key === 'string' ? [b.key] : b.key;
  if (!Array.isArray(key) || key.length === 0 || !key.every((k) => typeof k === 'string' && k.length > 0)) {
    throw new AppError('bad_request', '"key" must name the key column(s): a non-empty array of column names');
  }
  if (new Set(key.map((k: string) => k.toLowerCase())).size !== key.length) throw new AppError('bad_request', '"key" names a column twice');
  if (!Array.isArray(b.rows) || b.rows.length === 0) throw new AppError('bad_request', '"rows" must be a non-empty array of objects');
  if (existing) {
    const columns = new Set(existing.columns.map((c) => c.name.toLowerCase()));
    const missing = (key as string[]).filter((k) => !columns.has(k.toLowerCase()));
    if (missing.length) {
      throw new AppError('bad_request', `table "${table}" has no column ${missing.map((m) => `"${m}"`).join(', ')} to use as the key; its columns are ${existing.columns.map((c) => c.name).join(', ')}`);
    }
    // A key is matched by value: a column of JSON, nested values or bytes has no scalar value to match on.
    for (const k of key as string[]) {
      const type = existing.columns.find((c) => c.name.toLowerCase() === k.toLowerCase())!.type;
      if (/^(JSON|BLOB|BIT|STRUCT|MAP|UNION)\b|\]$/i.test(type)) {
        throw new AppError('bad_request', `column "${k}" of table "${table}" is ${type}: a key column must hold single values (text, numbers, dates, booleans)`);
      }
    }
  }
  const rows = b.rows as unknown[];
  rows.forEach((row, i) => {
    if (!row || typeof row !== 'object' || Array.isArray(row)) throw new AppError('bad_request', `rows[${i}] is not an object`);
    for (const k of key as string[]) {
      const v = (row as Record<string, unknown>)[k];
      if (v === undefined || v === null) throw new AppError('bad_request', `rows[${i}] has no value for key column "${k}"`);
      if (typeof v === 'object') throw new AppError('bad_request', `rows[${i}].${k}: a key value must be a string, number or boolean`);
    }
    if (Object.keys(row).length === 0) throw new AppError('bad_request', `rows[${i}] is empty`);
  });
  return { key: key as string[], rows: rows as Record<string, unknown>[] };
}

/** Appends a write to the table's stream and records it as pending; returns the write id. */
/** An `Idempotency-Key` header's value: 1 to 200 visible ASCII characters. */
export function checkIdempotencyKey(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value) || !/^[\x21-\x7e]{1,200}$/.test(value)) {
    throw new AppError('bad_request', 'Idempotency-Key must be one value of 1 to 200 visible ASCII characters (no spaces)');
  }
  return value;
}

/**
 * Queues a write (the entry and its pending state in one step). With an idempotency key the key is checked and
 * recorded in that same step: the same key with the same request within `ttlMs` returns the first write's id
 * (`replayed`) and queues nothing, also for requests that arrive at once; the same key with another request is
 * refused (422).
 */
export async function enqueueWrite(
  redis: RedisClient,
  keys: Keys,
  table: string,
  op: 'upsert' | 'delete',
  write: { key: string[]; rows: Record<string, unknown>[] },
  durability: { replicas: number; timeoutMs: number } = { replicas: 0, timeoutMs: 0 },
  idempotency?: { key: string; ttlMs: number },
): Promise<{ writeId: string; replayed: boolean }> {
  const at = Date.now();
  const entry: WriteEntry = { v: 1, op, key: write.key, rows: write.rows, at };
  WriteEntry.parse(entry);
  const state: WriteState = { v: 1, status: 'pending', op, rows: write.rows.length, at };
  const keyHash = idempotency ? createHash('sha256').update(idempotency.key).digest('hex').slice(0, 32) : '';
  const fingerprint = idempotency ? createHash('sha256').update(`${op}\n${JSON.stringify(write.key)}\n${JSON.stringify(write.rows)}`).digest('hex') : '';
  // The table set lives in another slot: registered first, so an applier finds every stream that exists.
  await redis.sadd(keys.writeTables, table);
  const [outcome, id] = (await enqueueScript.run(
    redis,
    [keys.tableWrites(table), keys.tableWriteState(table), keys.tableIdempotency(table, keyHash || 'none')],
    ['1', op, JSON.stringify(write.key), JSON.stringify(write.rows), at, encode(WriteState, state), keys.writesChannel, table, fingerprint, idempotency?.ttlMs ?? 0],
  )) as [string, string];
  const writeId = `${table}.${String(id)}`;
  if (outcome === 'reused') {
    throw new AppError(
      'idempotency_key_reused',
      `Idempotency-Key "${idempotency!.key}" was used for another request to ${table} (write ${writeId}) within WRITER_IDEMPOTENCY_TTL_MS; send a new key with a new write`,
    );
  }
  if (durability.replicas > 0) {
    const acked = await waitForReplicas(redis, keys.tableWrites(table), durability.replicas, durability.timeoutMs);
    if (acked < durability.replicas) {
      throw new AppError(
        'not_ready',
        `write ${writeId} was queued but only ${acked} of ${durability.replicas} Redis replicas confirmed it within ${durability.timeoutMs} ms ` +
          `(QUERY_API_WRITE_REPLICAS): a failover now could lose it. Check GET /v1/writes/${writeId} before sending it again`,
      );
    }
  }
  return { writeId, replayed: outcome === 'replay' };
}

/** The public view of a write's progress. */
export interface WriteStatusView {
  writeId: string;
  table: string;
  status: 'pending' | 'applied' | 'visible' | 'failed';
  op: 'upsert' | 'delete';
  rows: number;
  queuedAt: string;
  appliedAt?: string;
  version?: number;
  error?: string;
}

/** True when a served snapshot holds every file version the write produced. */
export function snapshotContains(meta: TableMeta | undefined, state: WriteState): boolean {
  if (!meta || state.status !== 'applied' || !state.files) return false;
  const byPath = new Map(meta.files.map((f) => [f.path, f.mtimeMs]));
  return state.files.every((f) => {
    const served = byPath.get(f.path);
    return served !== undefined && served >= f.mtimeMs;
  });
}

/** Reads a write's state and says whether the served snapshot shows it. */
export async function writeStatus(
  redis: RedisClient,
  keys: Keys,
  writeId: string,
  served: (table: string) => TableMeta | undefined,
): Promise<WriteStatusView> {
  const { table, id } = parseWriteId(writeId);
  const raw = await redis.hget(keys.tableWriteState(table), id);
  if (!raw) throw new AppError('not_found', `no write ${writeId} (unknown, or older than the status retention)`);
  const d = decode(WriteState, raw);
  if (!d.ok) throw new AppError('internal', `the state of write ${writeId} is unreadable: ${d.error}`);
  const s = d.value;
  const meta = served(table);
  const visible = snapshotContains(meta, s);
  return {
    writeId,
    table,
    status: visible ? 'visible' : s.status,
    op: s.op,
    rows: s.rows,
    queuedAt: new Date(s.at).toISOString(),
    ...(s.appliedAt ? { appliedAt: new Date(s.appliedAt).toISOString() } : {}),
    ...(visible && meta ? { version: meta.version } : {}),
    ...(s.error ? { error: s.error } : {}),
  };
}
