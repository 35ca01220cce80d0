import type { Logger } from './logger.js';

type Step = { name: string; run: () => Promise<void> | void };

/** A signal this soon after the first is the same request delivered twice, not a second Ctrl+C. */
const REPEAT_MS = 1_000;

/**
 * Runs registered steps in order on SIGTERM/SIGINT (stop intake → finish in-flight work →
 * close clients), bounded by a deadline. A second signal, or the deadline, exits at once.
 */
export class Shutdown {
  private readonly steps: Step[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly deadlineMs: number,
  ) {}

  /** Adds a step; steps run in the order they were added. */
  add(name: string, run: () => Promise<void> | void): this {
    this.steps.push({ name, run });
    return this;
  }

  /**
   * Installs the signal handlers. One Ctrl+C can arrive more than once (from the terminal to the whole process
   * group, and again from a parent such as npm that forwards it): a repeat within a second is the same request.
   */
  listen(): this {
    let firstAt = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.running) {
        if (Date.now() - firstAt < REPEAT_MS) return;
        this.log.warn({ signal }, 'second signal, exiting now');
        process.exit(1);
      }
      firstAt = Date.now();
      this.log.info({ signal, deadlineMs: this.deadlineMs }, 'shutting down');
      void this.run().then(() => process.exit(0));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    return this;
  }

  /** Runs every step once; later calls return the same promise. */
  run(): Promise<void> {
    this.running ??= (async () => {
      const deadline = setTimeout(() => {
        this.log.error({ deadlineMs: this.deadlineMs }, 'shutdown deadline passed, exiting');
        process.exit(1);
      }, this.deadlineMs);
      deadline.unref();
      for (const step of this.steps) {
        try {
          await step.run();
        } catch (err) {
          this.log.warn({ err, step: step.name }, 'shutdown step failed');
        }
      }
      clearTimeout(deadline);
      this.log.info('shutdown complete');
    })();
    return this.running;
  }
}
