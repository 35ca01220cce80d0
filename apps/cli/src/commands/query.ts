import { API_FLAGS, UsageError, helpText, parseCommand, type CommandSpec } from '../args.js';
import { formatTable } from '../format-table.js';
import { apiRequest } from '../http-client.js';

export const querySpec: CommandSpec = {
  name: 'query',
  summary: 'Runs one read-only SQL statement through query-api and prints the result.',
  usage: 'query "<sql>" [--format table|json|csv|ndjson|arrow|parquet] [--version <table>=<n>] [--as-of <time>]',
  positionals: true,
  flags: {
    ...API_FLAGS,
    'as-of': { type: 'string', help: 'read every table as it was at this ISO-8601 time (a retained version)' },
    version: { type: 'string', help: 'pin tables to retained versions: <table>=<n>[,<table>=<n>…]' },
    format: { type: 'string', short: 'f', help: 'table (default) or json: at most QUERY_MAX_ROWS rows; csv, ndjson, arrow (Arrow IPC stream) or parquet: every row, streamed' },
  },
};

/** Exit code when the result was cut (row cap, byte cap or deadline): the output is not the whole answer. */
export const EXIT_CUT = 3;

/** Copies a streamed answer to stdout with backpressure; false when the server cut it short. */
async function pipeToStdout(res: Response): Promise<{ complete: boolean; bytes: number }> {
  let bytes = 0;
  try {
    for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += piece.byteLength;
      if (!process.stdout.write(piece)) await new Promise((resolve) => process.stdout.once('drain', resolve));
    }
  } catch {
    return { complete: false, bytes };
  }
  return { complete: true, bytes };
}

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
  if (!['table', 'json', 'csv', 'ndjson', 'arrow', 'parquet'].includes(format)) throw new UsageError(`--format must be table, json, csv, ndjson, arrow or parquet`);
  const pins: Record<string, unknown> = {};
  if (values['as-of']) pins.asOf = values['as-of'];
  if (values.version) {
    pins.versions = Object.fromEntries(
      (values.version as string).split(',').map((pair) => {
        const [t, v] = pair.split('=');
        if (!t || !v || !/^\d+$/.test(v)) throw new UsageError(`--version takes <table>=<n>[,<table>=<n>…], not "${pair}"`);
        return [t.trim(), Number(v)];
      }),
    );
  }
  const res = await apiRequest('POST', '/v1/query', { sql, format: format === 'table' ? 'json' : format, ...pins });
  return await printAnswer(res, format);
}

/** Prints a query-shaped answer: `table` as a text table (from JSON), any other format's bytes as they come. */
export async function printAnswer(res: Response, format: string): Promise<number> {
  if (format !== 'table') {
    const { complete, bytes } = await pipeToStdout(res);
    if (!complete) {
      process.stderr.write(
        `flashduck: the result was cut off after ${bytes} bytes: the server stopped it (larger than QUERY_MAX_STREAM_BYTES, or past QUERY_TIMEOUT_MS); the output is incomplete. Add a LIMIT or a WHERE.\n`,
      );
      return EXIT_CUT;
    }
    if (res.headers.get('x-flashduck-truncated') === 'true') {
      process.stderr.write(`flashduck: the result was cut at ${res.headers.get('x-flashduck-row-count')} rows (QUERY_MAX_ROWS applies to json); use --format csv, ndjson, arrow or parquet for every row.\n`);
      return EXIT_CUT;
    }
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
  if (body.truncated) {
    process.stderr.write(`flashduck: only the first ${body.rowCount} rows are shown (QUERY_MAX_ROWS); use --format csv, ndjson, arrow or parquet for every row.\n`);
    return EXIT_CUT;
  }
  return 0;
}
