import { API_FLAGS, UsageError, helpText, parseCommand, type CommandSpec } from '../args.js';
import { age, formatTable } from '../format-table.js';
import { apiRequest } from '../http-client.js';

export const versionsSpec: CommandSpec = {
  name: 'versions',
  summary: 'Lists the retained versions of a table, newest first (query one with: query --version <table>=<n>, or --as-of <time>).',
  usage: 'versions <table> [--json]',
  positionals: true,
  flags: { ...API_FLAGS, json: { type: 'boolean', help: 'print JSON instead of a table' } },
};

/** `flashduck versions <table>`. */
export async function runVersionsCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(versionsSpec, argv);
  if (help) {
    process.stdout.write(helpText(versionsSpec));
    return 0;
  }
  const [table, ...rest] = positionals;
  if (!table || rest.length) throw new UsageError('name one table: flashduck versions <table>');
  const body = (await (await apiRequest('GET', `/v1/tables/${encodeURIComponent(table)}/versions`)).json()) as {
    table: string;
    versions: { version: number; createdAt: string; rows: number; files: number; bytes: number; cause: string }[];
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  const now = Date.now();
  process.stdout.write(
    `${formatTable(
      ['version', 'created', 'age', 'rows', 'files', 'bytes', 'made by'],
      body.versions.map((v) => [v.version, v.createdAt, age(Date.parse(v.createdAt), now), v.rows, v.files, v.bytes, v.cause]),
    )}\n`,
  );
  return 0;
}
