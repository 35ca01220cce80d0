// A reader process: reads data files with DuckDB into parts (DuckDB files) for the cacher. Files nobody
// vetted are read here, in a process of their own, so a reader that crashes takes down this process only;
// the cacher reports the file and carries on.
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage, type FileKind } from '@flashduck/core';
import { openDuckDB } from '@flashduck/core/duckdb';
import { FileReadError, readFileToPart } from './read-file.js';
import type { CsvOptions } from './table-options.js';

interface ReadRequest {
  id: number;
  absPath: string;
  relPath: string;
  kind: FileKind;
  out: string;
  csv?: CsvOptions;
}

// Fault injection for the reliability tests: never get ready while this file exists (a reader stuck at start).
const hangWhile = process.env.CACHER_FAULT_HANG_START_WHILE;
if (hangWhile && existsSync(hangWhile)) await new Promise(() => setInterval(() => undefined, 60_000));

const memoryLimitMb = Number(process.env.READER_MEMORY_LIMIT_MB) || undefined;
const threads = Number(process.env.READER_THREADS) || undefined;
/** A folder of this process's own (the pool makes a new one for each reader and removes it when the reader ends). */
const linkDir: string =
  process.env.READER_DIR ??
  (() => {
    throw new Error('a reader process is started by the cacher, which gives it READER_DIR');
  })();
await mkdir(linkDir, { recursive: true });
const db = await openDuckDB({ memoryLimitMb, threads, tempDir: path.join(linkDir, 'spill') });
let queue = Promise.resolve();

// Fault injection for the reliability tests: crash (abort) on a file whose path contains this text.
const crashOn = process.env.CACHER_FAULT_CRASH_ON;

/**
 * Answers the cacher. The cacher may be gone by then (it stopped while this file was read): the answer is dropped
 * instead of crashing this process with an unhandled ERR_IPC_CHANNEL_CLOSED.
 */
function reply(message: object): void {
  if (process.connected) process.send?.(message, undefined, undefined, () => undefined);
}

process.on('message', (req: ReadRequest) => {
  queue = queue.then(async () => {
    if (crashOn && req.relPath.includes(crashOn)) process.abort();
    try {
      const r = await readFileToPart(db.conn, { ...req, linkDir, index: req.id });
      reply({ id: req.id, ok: true, rows: r.rows, columns: r.columns, skipped: r.skipped });
    } catch (err) {
      reply({ id: req.id, ok: false, fileError: err instanceof FileReadError, message: errorMessage(err) });
    }
  });
});
process.on('disconnect', () => {
  void rm(linkDir, { recursive: true, force: true }).finally(() => process.exit(0));
});
reply({ ready: true });
