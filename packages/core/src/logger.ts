import { pino, type Logger } from 'pino';
import sonicBoom from 'sonic-boom';
import type { SonicBoom as SonicBoomClass } from 'sonic-boom';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

/** Log bytes held while stdout is not read; lines past this are dropped (and counted) instead of waiting. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** How long the last lines may take to go out when the process exits. */
const EXIT_FLUSH_MS = 1_000;

// A CommonJS module whose export is the class itself.
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass;
let stdoutLog: SonicBoomClass | null = null;

/**
 * Where log lines go: stdout, written without ever blocking the process. A stdout nobody reads (a full pipe, a
 * stalled log shipper) used to stop the whole process inside a write, queries, builds and SIGTERM included; now
 * lines wait in a bounded buffer, those past it are dropped and a line later says how many, and at exit the
 * buffer gets {@link EXIT_FLUSH_MS} to go out. One destination per process, so components in one process
 * (standalone) keep their lines in order.
 */
function stdoutDestination(): SonicBoomClass {
  if (stdoutLog) return stdoutLog;
  // As Node opens it: a pipe becomes non-blocking, so a full one answers EAGAIN (retried later) instead of waiting.
  const fd = process.stdout.fd ?? 1;
  let exitDeadline = 0;
  let dropped = 0;
  const dest = new SonicBoom({
    fd,
    sync: false,
    minLength: 0,
    maxLength: MAX_BUFFERED_BYTES,
    retryEAGAIN: () => exitDeadline === 0 || Date.now() < exitDeadline,
  });
  let lastDropped = false;
  dest.on('drop', () => {
    dropped += 1;
    lastDropped = true;
  });
  // The reader went away (EPIPE) or the exit flush gave up: nothing to tell, nowhere to tell it.
  dest.on('error', () => undefined);
  const report = setInterval(() => {
    if (dropped === 0) return;
    const n = dropped;
    lastDropped = false;
    dest.write(`${JSON.stringify({ level: 40, time: new Date().toISOString(), pid: process.pid, dropped: n, msg: `${n} log lines were dropped: stdout was not read` })}\n`);
    // A report that did not fit is not a lost line of its own: the count is told again later.
    dropped -= lastDropped ? 1 : n;
  }, 5_000);
  report.unref();
  process.once('exit', () => {
    exitDeadline = Date.now() + EXIT_FLUSH_MS;
    try {
      dest.flushSync();
    } catch {
      /* stdout still not read: the rest is lost rather than the exit */
    }
  });
  stdoutLog = dest;
  return dest;
}

/**
 * The process logger: JSON lines on stdout, tokens and passwords redacted.
 * Components take a child: `log.child({ component: 'cacher' })`.
 */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...base },
      redact: {
        paths: ['*.token', '*.tokens', '*.password', '*.authorization', 'headers.authorization', 'req.headers.authorization'],
        censor: '***',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    level === 'silent' ? undefined : stdoutDestination(),
  );
}
