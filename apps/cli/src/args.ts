import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Flags every Redis-side command accepts; each overrides its environment variable. */
export const REDIS_FLAGS = {
  'redis-url': { type: 'string', env: 'FLASHDUCK_REDIS_URL', help: 'Redis URL: redis://host:port, redis+cluster://host:port,… or redis+sentinel://host:port,…/<master> (FLASHDUCK_REDIS_URL, default redis://127.0.0.1:6379)' },
  prefix: { type: 'string', env: 'FLASHDUCK_PREFIX', help: 'key prefix in Redis (FLASHDUCK_PREFIX, default fd)' },
} as const;

export const DIR_FLAGS = {
  'data-dir': { type: 'string', env: 'FLASHDUCK_DATA_DIR', help: 'folder of data files (FLASHDUCK_DATA_DIR, default ./data)' },
  'export-dir': { type: 'string', env: 'FLASHDUCK_EXPORT_DIR', help: 'folder for Parquet exports (FLASHDUCK_EXPORT_DIR, default ./exports)' },
  'log-level': { type: 'string', env: 'FLASHDUCK_LOG_LEVEL', help: 'fatal|error|warn|info|debug|trace|silent' },
} as const;

export const API_FLAGS = {
  'api-url': { type: 'string', env: 'FLASHDUCK_API_URL', help: 'query-api URL (FLASHDUCK_API_URL, default http://127.0.0.1:8080)' },
  token: { type: 'string', env: 'FLASHDUCK_API_TOKEN', help: 'bearer token when the API requires one (FLASHDUCK_API_TOKEN)' },
} as const;

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly env?: string;
  readonly help: string;
  readonly short?: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly flags: Record<string, FlagSpec>;
  readonly positionals?: boolean;
}

/** Thrown for a usage mistake: printed with the command's help hint, exit 2. */
export class UsageError extends Error {}

export function helpText(spec: CommandSpec): string {
  const lines = [`Usage: flashduck ${spec.usage}`, '', spec.summary, '', 'Options:'];
  const all: [string, FlagSpec][] = [...Object.entries(spec.flags), ['help', { type: 'boolean', help: 'show this help', short: 'h' }]];
  for (const [name, f] of all) {
    const flag = `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ' <value>' : ''}`;
    lines.push(`  ${flag.padEnd(30)} ${f.help}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Parses a command's argv. Flags bound to an environment variable are written into `process.env`,
 * so they override it for the components that read the environment.
 */
export function parseCommand(spec: CommandSpec, argv: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[]; help: boolean } {
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean', short: 'h' } };
  for (const [name, f] of Object.entries(spec.flags)) options[name] = { type: f.type, ...(f.short ? { short: f.short } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nRun "flashduck ${spec.name} --help" for usage.`);
  }
  if (!spec.positionals && parsed.positionals.length) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}"\nRun "flashduck ${spec.name} --help" for usage.`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  for (const [name, f] of Object.entries(spec.flags)) {
    const v = values[name];
    if (f.env && typeof v === 'string') process.env[f.env] = v;
  }
  return { values, positionals: parsed.positionals, help: values.help === true };
}
