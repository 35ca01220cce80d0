#!/usr/bin/env node
import { UsageError } from './args.js';
import { COMPONENTS, runComponentCommand, runStandalone } from './commands/components.js';
import { runStatusCommand, runTablesCommand } from './commands/inspect.js';
import { runDiffCommand } from './commands/diff.js';
import { runExportCommand } from './commands/export.js';
import { runQueryCommand } from './commands/query.js';
import { runVersionsCommand } from './commands/versions.js';
import { runWriteCommand } from './commands/writes.js';
import { ApiError } from './http-client.js';
import { adoptRunningStandalone } from './runtime-state.js';

const HELP = `FlashDuck: a folder of CSV, TSV, JSON, NDJSON and Parquet files, queryable with SQL in real time.

Usage: flashduck <command> [options]     (flashduck <command> --help for each command's options)

Run:
  standalone       all five components in one process (web console on http://localhost:8080)
  monitor          scan the data folder and publish changes
  cacher           rebuild table snapshots into Redis
  query-api        HTTP SQL API and web console
  exporter         one Parquet file per table in the export folder
  write-applier    apply queued upserts/deletes to the data files

Use:
  query "<sql>"    run SQL through query-api (--format table|json|csv|ndjson|arrow)
  tables           list tables with version, rows, files, errors, age
  versions <table> the retained versions of a table (query one: query --version t=N, or --as-of <time>)
  diff <table> <from> [<to>]  the rows that differ between two versions (--key id pairs updates)
  status           live components, tables and write streams
  upsert <table>   queue an upsert (--key id --file rows.json|.ndjson|.csv, or stdin)
  delete <table>   queue a delete (--key id 1 2 3, or rows from --file/stdin)
  export <table>   export a table to Parquet now (--out file, or the export dir)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === 'standalone') {
    await runStandalone(rest);
    return -1;
  }
  if (command in COMPONENTS) {
    await runComponentCommand(command, rest);
    return -1;
  }
  adoptRunningStandalone();
  switch (command) {
    case 'query':
      return await runQueryCommand(rest);
    case 'tables':
      return await runTablesCommand(rest);
    case 'versions':
      return await runVersionsCommand(rest);
    case 'diff':
      return await runDiffCommand(rest);
    case 'status':
      return await runStatusCommand(rest);
    case 'export':
      return await runExportCommand(rest);
    case 'upsert':
      return await runWriteCommand('upsert', rest);
    case 'delete':
      return await runWriteCommand('delete', rest);
    default:
      throw new UsageError(`unknown command "${command}"\nRun "flashduck --help" for the list of commands.`);
  }
}

try {
  const code = await main(process.argv.slice(2));
  // Long-running commands (-1) keep the process alive until a signal.
  if (code >= 0) process.exitCode = code;
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`flashduck: ${err.message}\n`);
    process.exitCode = 2;
  } else if (err instanceof ApiError) {
    process.stderr.write(`flashduck: ${err.code}: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`flashduck: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
