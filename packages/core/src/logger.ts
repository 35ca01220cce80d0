import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

/**
 * The process logger: JSON lines on stdout, tokens and passwords redacted.
 * Components take a child: `log.child({ component: 'cacher' })`.
 */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    redact: {
      paths: ['*.token', '*.tokens', '*.password', '*.authorization', 'headers.authorization', 'req.headers.authorization'],
      censor: '***',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
