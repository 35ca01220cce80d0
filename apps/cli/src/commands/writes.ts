import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { API_FLAGS, UsageError, helpText, parseCommand, type CommandSpec } from '../args.js';
import { ApiError, apiRequest } from '../http-client.js';

const WRITE_FLAGS = {
  ...API_FLAGS,
  key: { type: 'string', short: 'k', help: 'key column(s), comma-separated (required)' },
  file: { type: 'string', help: 'rows as JSON (array or object), NDJSON or CSV; "-" or omitted: standard input' },
  format: { type: 'string', help: 'json, ndjson or csv (default: from the file extension, else detected)' },
  wait: { type: 'boolean', short: 'w', help: 'wait until the write is visible in queries (or failed)' },
  'idempotency-key': { type: 'string', help: 'sent as Idempotency-Key: the same key and rows again queue nothing (default: a new key per command, so its own retries are safe)' },
} as const;

export const upsertSpec: CommandSpec = {
  name: 'upsert',
  summary: 'Queues an upsert: rows whose key exists are updated (given columns replaced), others are added.',
  usage: 'upsert <table> --key <col>[,<col>] [--file rows.json|rows.ndjson|rows.csv|-] [--wait]',
  positionals: true,
  flags: WRITE_FLAGS,
};

export const deleteSpec: CommandSpec = {
  name: 'delete',
  summary: 'Queues a delete of the rows with the given keys: key values as arguments, or rows from a file/stdin.',
  usage: 'delete <table> --key <col>[,<col>] [<value> …] [--file keys.json|-] [--wait]',
  positionals: true,
  flags: WRITE_FLAGS,
};

/** A CSV value as JSON: numbers and booleans become typed, empty cells NULL, the rest text. */
function csvValue(s: string): unknown {
  if (s === '') return null;
  if (/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(s) && !/^[+-]?0\d/.test(s)) return Number(s);
  if (s === 'true' || s === 'false') return s === 'true';
  return s;
}

/** Parses RFC 4180 CSV with a header line into objects. */
export function parseCsv(text: string): Record<string, unknown>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += ch;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  const [header, ...body] = rows.filter((r) => r.some((c) => c !== ''));
  if (!header) return [];
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h.trim(), csvValue(r[i] ?? '')])));
}

/** Parses rows from text in a format (given, from the name, or detected). */
export function parseRows(text: string, format: string | undefined, name = ''): Record<string, unknown>[] {
  const fmt = format ?? (/\.(ndjson|jsonl)$/i.test(name) ? 'ndjson' : /\.csv$/i.test(name) ? 'csv' : /\.json$/i.test(name) ? 'json' : undefined);
  const t = text.replace(/^\uFEFF/, '').trim();
  if (fmt === 'csv') return parseCsv(t);
  if (fmt === 'ndjson') return t.split('\n').filter((l) => l.trim()).map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`line ${i + 1} is not JSON: ${(err as Error).message}`);
    }
  });
  try {
    const v = JSON.parse(t) as unknown;
    return Array.isArray(v) ? (v as Record<string, unknown>[]) : [v as Record<string, unknown>];
  } catch {
    if (fmt === 'json') throw new UsageError('the input is not valid JSON');
    if (t.startsWith('{')) return parseRows(t, 'ndjson');
    return parseCsv(t);
  }
}

async function readInput(file: string | undefined): Promise<string> {
  if (file && file !== '-') return await readFile(file, 'utf8');
  if (process.stdin.isTTY) throw new UsageError('give rows with --file, or pipe them into standard input');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function waitVisible(writeId: string): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = (await (await apiRequest('GET', `/v1/writes/${encodeURIComponent(writeId)}`)).json()) as { status: string; version?: number; error?: string };
    if (s.status === 'visible') {
      process.stderr.write(`${writeId} is visible in version ${s.version}\n`);
      return 0;
    }
    if (s.status === 'failed') {
      process.stderr.write(`${writeId} failed: ${s.error}\n`);
      return 1;
    }
    if (Date.now() > deadline) {
      process.stderr.write(`${writeId} is still ${s.status} after 60 s\n`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `flashduck upsert` and `flashduck delete`. */
export async function runWriteCommand(op: 'upsert' | 'delete', argv: string[]): Promise<number> {
  const spec = op === 'upsert' ? upsertSpec : deleteSpec;
  const { values, positionals, help } = parseCommand(spec, argv);
  if (help) {
    process.stdout.write(helpText(spec));
    return 0;
  }
  const [table, ...rest] = positionals;
  if (!table) throw new UsageError(`name the table: flashduck ${spec.usage}`);
  const keyFlag = values.key as string | undefined;
  if (!keyFlag) throw new UsageError('--key is required (the column(s) that identify a row)');
  const key = keyFlag.split(',').map((k) => k.trim()).filter(Boolean);
  let rows: Record<string, unknown>[];
  if (op === 'delete' && rest.length) {
    if (key.length !== 1) throw new UsageError('key values as arguments work with one key column; use --file for composite keys');
    rows = rest.map((v) => ({ [key[0]!]: csvValue(v) }));
  } else {
    if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
    rows = parseRows(await readInput(values.file as string | undefined), values.format as string | undefined, (values.file as string | undefined) ?? '');
  }
  // One key per command: a retry after a lost answer (connection reset, Redis failover) cannot queue it twice.
  const idempotencyKey = (values['idempotency-key'] as string | undefined) ?? `flashduck-cli-${randomUUID()}`;
  let res: Response;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await apiRequest('POST', `/v1/tables/${encodeURIComponent(table)}/${op}`, { key, rows }, { 'idempotency-key': idempotencyKey });
      break;
    } catch (err) {
      if (attempt >= 4 || !(err instanceof ApiError) || (err.status !== 0 && err.status !== 503)) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  const { writeId } = (await res.json()) as { writeId: string };
  process.stdout.write(`${writeId}\n`);
  const replayed = res.headers.get('idempotent-replayed') === 'true';
  process.stderr.write(`${replayed ? 'already queued (same Idempotency-Key):' : 'queued'} ${op} of ${rows.length} row${rows.length === 1 ? '' : 's'} into ${table}\n`);
  return values.wait ? await waitVisible(writeId) : 0;
}
