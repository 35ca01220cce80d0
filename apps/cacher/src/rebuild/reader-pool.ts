import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeDuckDB, openDuckDB, type DuckDBHandle } from '@flashduck/core/duckdb';
import type { FileKind, Logger } from '@flashduck/core';
import { FileReadError, readFileToPart, type ReadFileResult } from './read-file.js';
import type { CsvOptions } from './table-options.js';

/** A file to read into a part (DuckDB file). */
export interface ReadJob {
  readonly absPath: string;
  readonly relPath: string;
  readonly kind: FileKind;
  readonly out: string;
  /** The table's validated CSV reader options (`_table.yaml`). */
  readonly csv?: CsvOptions;
}

/** Reads data files into parts (DuckDB files). */
export interface FileReader {
  read(job: ReadJob): Promise<ReadFileResult>;
  close(): Promise<void>;
}

/** Readers that may die before they are ready, one after another, for one read before it fails (the job is retried). */
const START_TRIES = 2;
const CHILD = fileURLToPath(new URL('./reader-child.js', import.meta.url));

interface Worker {
  child: ChildProcess;
  /** Taken by a read (set in the same tick the worker is chosen, so two reads never share one). */
  reserved: boolean;
  busy: { id: number; job: ReadJob; resolve: (r: ReadFileResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; tries: number } | null;
  ready: Promise<void>;
  /** Said it is ready: from then on, a death while reading is the file's doing. */
  started: boolean;
}

/**
 * Reader processes (up to `size`), each reading one file at a time. A reader that crashes, or takes
 * longer than `timeoutMs` on a file, is replaced, and that file is reported as unreadable with the reason.
 */
export class ReaderPool implements FileReader {
  private readonly workers: Worker[] = [];
  private readonly waiting: (() => void)[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly log: Logger,
    private readonly options: { timeoutMs: number; startMs?: number; memoryLimitMb?: number | undefined; threads?: number | undefined; dir: string },
  ) {}

  private spawn(): Worker {
    const env = { ...process.env };
    if (this.options.memoryLimitMb) env.READER_MEMORY_LIMIT_MB = String(this.options.memoryLimitMb);
    if (this.options.threads) env.READER_THREADS = String(this.options.threads);
    // Its own new folder (DuckDB's links to the files, its spill files) in the cacher's, removed here however the
    // reader ends: a reader killed mid-read cannot clean up, and a later reader must never find its leftovers.
    mkdirSync(this.options.dir, { recursive: true });
    const dir = mkdtempSync(path.join(this.options.dir, 'reader-'));
    env.READER_DIR = dir;
    const child = fork(CHILD, [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    const worker: Worker = {
      child,
      reserved: false,
      busy: null,
      started: false,
      ready: new Promise((resolve, reject) => {
        child.once('message', () => {
          worker.started = true;
          clearTimeout(startTimer);
          resolve();
        });
        child.once('exit', (code, signal) => reject(new Error(`the reader process ended before it was ready (${signal ? `signal ${signal}` : `exit code ${code}`})`)));
      }),
    };
    // A reader that never gets going (stuck loading DuckDB) would hold its read until the read timeout: it is
    // replaced, and the read is tried again on another reader.
    const startMs = this.options.startMs ?? 30_000;
    const startTimer = setTimeout(() => {
      this.log.warn({ startMs }, 'a reader process did not start in time; replacing it');
      child.kill('SIGKILL');
    }, startMs);
    worker.ready.catch(() => undefined);
    child.on('message', (msg: { id?: number; ok?: boolean; rows?: number; columns?: ReadFileResult['columns']; skipped?: ReadFileResult['skipped']; message?: string; fileError?: boolean }) => {
      const b = worker.busy;
      if (!b || msg.id !== b.id) return;
      clearTimeout(b.timer);
      worker.busy = null;
      worker.reserved = false;
      if (msg.ok) b.resolve({ rows: msg.rows!, columns: msg.columns!, ...(msg.skipped ? { skipped: msg.skipped } : {}) });
      else b.reject(msg.fileError ? new FileReadError(b.job.relPath, msg.message!) : new Error(msg.message));
      this.release();
    });
    child.on('exit', (code, signal) => {
      void rm(dir, { recursive: true, force: true }).catch(() => undefined);
      const i = this.workers.indexOf(worker);
      if (i >= 0) this.workers.splice(i, 1);
      clearTimeout(startTimer);
      const b = worker.busy;
      if (b && !worker.started) {
        // Never read the file: its read goes to another reader.
        clearTimeout(b.timer);
        worker.busy = null;
        if (b.tries < START_TRIES) this.read(b.job, b.tries + 1).then(b.resolve, b.reject);
        else b.reject(new Error(`${START_TRIES + 1} reader processes in a row ended before they were ready (the last: ${signal ? `signal ${signal}` : `exit code ${code}`})`));
      } else if (b) {
        clearTimeout(b.timer);
        worker.busy = null;
        const how = signal ? `signal ${signal}` : `exit code ${code}`;
        this.log.error({ file: b.job.relPath, how }, 'a reader process died while reading a file; the file is reported unreadable');
        b.reject(new FileReadError(b.job.relPath, `the reader crashed on this file (${how}); it is not read until it changes`));
      }
      this.release();
    });
    this.workers.push(worker);
    return worker;
  }

  /** Starts every reader now, so the first build does not wait for processes to start. */
  warm(): void {
    while (this.workers.length < this.size) this.spawn();
  }

  private release(): void {
    this.waiting.shift()?.();
  }

  private async idleWorker(): Promise<Worker> {
    for (;;) {
      if (this.closed) throw new Error('the reader pool is closed');
      const idle = this.workers.find((w) => !w.reserved);
      if (idle) {
        idle.reserved = true;
        return idle;
      }
      if (this.workers.length < this.size) {
        const w = this.spawn();
        w.reserved = true;
        return w;
      }
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  /** Reads a file on an idle reader; `tries` counts readers that died before they started on it. */
  async read(job: ReadJob, tries = 0): Promise<ReadFileResult> {
    const worker = await this.idleWorker();
    const id = this.nextId++;
    return await new Promise<ReadFileResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (worker.busy?.id !== id) return;
        worker.busy = null;
        worker.child.kill('SIGKILL'); // the worker leaves the pool on exit; a new one is started on demand
        reject(new FileReadError(job.relPath, `reading took longer than ${this.options.timeoutMs} ms (CACHER_READ_TIMEOUT_MS); it is not read until it changes`));
        this.release();
      }, this.options.timeoutMs);
      worker.busy = { id, job, resolve, reject, timer, tries };
      worker.ready.then(
        () => worker.child.send({ id, absPath: job.absPath, relPath: job.relPath, kind: job.kind, out: job.out, csv: job.csv }),
        () => undefined, // the exit handler hands the read to another reader
      );
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w();
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null) return resolve();
            w.child.once('exit', () => resolve());
            w.child.disconnect();
            setTimeout(() => w.child.kill('SIGKILL'), 2_000).unref();
          }),
      ),
    );
  }
}

/** Reads in the cacher's own process (CACHER_ISOLATE_READS=false): no process start, no crash isolation. */
export class InProcessReader implements FileReader {
  private next = 1;
  private db: Promise<DuckDBHandle> | null = null;

  constructor(private readonly linkDir: string) {}

  async read(job: ReadJob): Promise<ReadFileResult> {
    this.db ??= mkdir(this.linkDir, { recursive: true }).then(() => openDuckDB());
    const { conn } = await this.db;
    return await readFileToPart(conn, { ...job, linkDir: this.linkDir, index: this.next++ });
  }

  async close(): Promise<void> {
    if (this.db) closeDuckDB(await this.db);
    this.db = null;
  }
}
