import { API_FLAGS, UsageError, helpText, parseCommand, type CommandSpec } from '../args.js';
import { apiRequest } from '../http-client.js';
import { printAnswer } from './query.js';

export const diffSpec: CommandSpec = {
  name: 'diff',
  summary:
    'Prints the rows that differ between two retained versions of a table, with _change = insert | delete (or update, paired by --key, with _old_<column> beside). <to> defaults to the newest version.',
  usage: 'diff <table> <from> [<to>] [--key <col>[,<col>]] [--format table|json|csv|ndjson|arrow|parquet]',
  positionals: true,
  flags: {
    ...API_FLAGS,
    key: { type: 'string', short: 'k', help: 'pair a deleted and an inserted row with the same key into one update row' },
    format: { type: 'string', short: 'f', help: 'table (default) or json: at most QUERY_MAX_ROWS rows; csv, ndjson, arrow or parquet: every row, streamed' },
  },
};

const version = (value: string | undefined, name: string) => {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`<${name}> must be a version number (flashduck versions <table> lists them), not "${value}"`);
  return value;
};

/** `flashduck diff <table> <from> [<to>]`. */
export async function runDiffCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(diffSpec, argv);
  if (help) {
    process.stdout.write(helpText(diffSpec));
    return 0;
  }
  const [table, fromArg, toArg, ...rest] = positionals;
  if (!table || !fromArg || rest.length) throw new UsageError('usage: flashduck diff <table> <from> [<to>] (versions: flashduck versions <table>)');
  const format = (values.format as string | undefined) ?? 'table';
  if (!['table', 'json', 'csv', 'ndjson', 'arrow', 'parquet'].includes(format)) throw new UsageError(`--format must be table, json, csv, ndjson, arrow or parquet`);
  const params = new URLSearchParams({ from: version(fromArg, 'from')!, format: format === 'table' ? 'json' : format });
  const to = version(toArg, 'to');
  if (to) params.set('to', to);
  if (values.key) params.set('key', values.key as string);
  const res = await apiRequest('GET', `/v1/tables/${encodeURIComponent(table)}/changes?${params.toString()}`);
  return await printAnswer(res, format);
}
