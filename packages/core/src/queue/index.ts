import { Worker, type Job, type Queue, type WorkerOptions } from 'bullmq';
import type { Logger } from '../logger.js';
import { counter } from '../metrics.js';
import { closeRedis, type RedisClient } from '../redis.js';
import { within } from '../within.js';

const replacedTotal = counter('flashduck_queue_workers_replaced_total', 'Queue workers replaced after taking no job while jobs were waiting', ['queue']);

export interface SupervisedWorkerOptions {
  /** Queue name. */
  readonly name: string;
  readonly processor: (job: Job, token?: string) => Promise<unknown>;
  /** Worker options without `connection`: each worker gets a fresh connection from `connect`. */
  readonly workerOptions: Omit<WorkerOptions, 'connection'>;
  readonly connect: () => RedisClient;
  /** The same queue, for its waiting count. */
  readonly queue: Queue;
  readonly log: Logger;
  /** A worker that takes no job for this long while jobs wait (and none runs) is replaced. */
  readonly stallMs: number;
  /** Attaches event handlers to each worker created. */
  readonly attach?: (worker: Worker) => void;
}

/** A BullMQ worker that is replaced when it stops taking jobs. */
export interface SupervisedWorker {
  readonly worker: Worker;
  waitUntilReady(): Promise<unknown>;
  /** Stops supervising and closes the worker, waiting for the jobs in flight. */
  close(): Promise<void>;
}

/**
 * Runs a BullMQ worker and watches it. After a Redis failover (Sentinel or Cluster) a worker's blocking
 * connection can stay wedged while everything else recovers: jobs keep waiting and nothing takes them. When
 * jobs wait, none runs here and none was taken for `stallMs`, the worker is closed and replaced by a new one
 * on a new connection. Jobs are at-least-once and idempotent, so a replacement never loses or doubles work.
 */
export function superviseWorker(o: SupervisedWorkerOptions): SupervisedWorker {
  let inFlight = 0;
  let lastTakenAt = Date.now();
  let createdAt = Date.now();
  let closing = false;
  const processor = async (job: Job, token?: string) => {
    inFlight += 1;
    lastTakenAt = Date.now();
    try {
      return await o.processor(job, token);
    } finally {
      inFlight -= 1;
      lastTakenAt = Date.now();
    }
  };
  const make = () => {
    const connection = o.connect();
    const w = new Worker(o.name, processor, { ...o.workerOptions, connection });
    o.attach?.(w);
    createdAt = Date.now();
    return { worker: w, connection };
  };
  let current = make();
  let checking = false;
  let suspectSince = 0;
  const check = async () => {
    if (closing || checking || inFlight > 0) return;
    const idleMs = Date.now() - Math.max(lastTakenAt, createdAt);
    if (idleMs < o.stallMs) return;
    checking = true;
    try {
      const counts = await within(o.queue.getJobCounts('wait'), 2_000).catch(() => null);
      if (closing || !counts || !counts.wait || inFlight > 0) {
        suspectSince = 0;
        return;
      }
      // Jobs that just arrived are not a stall: only jobs still waiting at the next check, with none taken since.
      if (!suspectSince || suspectSince < lastTakenAt) {
        suspectSince = Date.now();
        return;
      }
      suspectSince = 0;
      o.log.warn({ queue: o.name, waiting: counts.wait, idleMs }, 'queue worker took no job while jobs were waiting; replacing it');
      replacedTotal.inc({ queue: o.name });
      const old = current;
      current = make();
      void within(old.worker.close(true), 5_000)
        .catch(() => undefined)
        .finally(() => void closeRedis(old.connection));
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void check(), Math.max(500, Math.floor(o.stallMs / 3)));
  timer.unref();
  return {
    get worker() {
      return current.worker;
    },
    waitUntilReady: () => current.worker.waitUntilReady(),
    async close() {
      closing = true;
      clearInterval(timer);
      await current.worker.close();
      await closeRedis(current.connection);
    },
  };
}
