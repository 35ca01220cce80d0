/** Stable error codes. query-api maps each to one HTTP status. */
export type ErrorCode =
  | 'bad_request'
  | 'bad_sql'
  | 'refused_statement'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'timeout'
  | 'too_large'
  | 'idempotency_key_reused'
  | 'gone'
  | 'rate_limited'
  | 'not_ready'
  | 'config'
  | 'file_unreadable'
  | 'redis'
  | 'internal';

/** The HTTP status of each code (used by query-api's error middleware). */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  bad_sql: 400,
  refused_statement: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  timeout: 408,
  too_large: 413,
  idempotency_key_reused: 422,
  gone: 410,
  rate_limited: 429,
  not_ready: 503,
  config: 500,
  file_unreadable: 500,
  redis: 503,
  internal: 500,
};

/** An error with a stable code and a message that names the input it concerns. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options?.details;
  }
}

/** Configuration problems, every one of them at once, each naming its variable. */
export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('config', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** The message of anything thrown, for logs and reports. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** DuckDB's message on one line, without the SQL echo and caret lines it appends. */
export function cleanDuckDBMessage(err: unknown): string {
  return errorMessage(err)
    .split('\n')
    .filter((l) => l.trim() && !/^LINE \d+:/.test(l) && !/^\s*\^\s*$/.test(l))
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}
