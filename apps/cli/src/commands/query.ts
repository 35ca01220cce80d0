import { API_FLAGS, UsageError, helpText, parseCommand, type CommandSpec } from '../args.js';
import { formatTable } from '../format-table.js';
import { apiRequest } from '../http-client.js';

export const querySpec: CommandSpec = {
  name: 'query',
  summary: 'Runs one read-only SQL statement through query-api and prints the result.',
  usage: 'query "<sql>" [--format table|json|csv|ndjson|arrow]',
  positionals: true,
  flags: {
    ...API_FLAGS,
    format: { type: 'string', short: 'f', help: 'table (default), json, csv, ndjson or arrow (Arrow IPC stream bytes)' },
  },
};

/** `flashduck query`. */
export async function runQueryCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(querySpec, argv);
  if (help) {
    process.stdout.write(helpText(querySpec));
    return 0;
  }
  const sql = positionals.join(' ').trim();
  if (!sql) throw new UsageError('give the SQL to run, e.g. flashduck query "SELECT * FROM orders LIMIT 5"');
  const format = (values.format as string | undefined) ?? 'table';
  if (!['table', 'json', 'csv', 'ndjson', 'arrow'].includes(format)) throw new UsageError(`--format must be table, json, csv, ndjson or arrow`);
  const res = await apiRequest('POST', '/v1/query', { sql, format: format === 'table' ? 'json' : format });
  if (format !== 'table') {
    process.stdout.write(Buffer.from(await res.arrayBuffer()));
    return 0;
  }
  const body = (await res.json()) as {
    columns: { name: string }[];
    rows: Record<string, unknown>[];
    rowCount: number;
    truncated: boolean;
    tables: Record<string, number>;
    elapsedMs: number;
  };
  const names = body.columns.map((c) => c.name);
  process.stdout.write(`${formatTable(names, body.rows.map((r) => names.map((n) => r[n])))}\n`);
  const tables = Object.entries(body.tables).map(([t, v]) => `${t}@v${v}`).join(', ');
  process.stderr.write(`${body.rowCount} row${body.rowCount === 1 ? '' : 's'}${body.truncated ? ' (truncated)' : ''} · ${body.elapsedMs} ms${tables ? ` · ${tables}` : ''}\n`);
  return 0;
}
