/**
 * What the worker does with the tasks it is sent: acknowledge, run once per attempt, and hand
 * the result to the outbox. A task sent again (the manager restarted, say) is acknowledged
 * again but not run twice.
 */
import type { Logger } from "../shared/log.ts";
import type { Executor } from "./executor.ts";
import type { ReportOutbox } from "./report_outbox.ts";

export interface RunRequest {
  taskId: string;
  attempt: number;
  cmd: string;
  params: string[];
}

export class Agent {
  readonly #executor: Executor;
  readonly #outbox: ReportOutbox;
  readonly #log: Logger;
  readonly #running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  /** Attempts this worker has run (bounded: only recent ones matter for repeats). */
  readonly #seen = new Set<string>();

  constructor(executor: Executor, outbox: ReportOutbox, log: Logger) {
    this.#executor = executor;
    this.#outbox = outbox;
    this.#log = log;
  }

  get running(): number {
    return this.#running.size;
  }

  /** Starts the task unless this attempt is already known; the caller acknowledges. */
  run(request: RunRequest): void {
    const key = `${request.taskId}#${request.attempt}`;
    if (this.#seen.has(key)) {
      this.#log.debug("task sent again; not running it twice", { task: request.taskId });
      return;
    }
    this.#remember(key);
    const abort = new AbortController();
    this.#log.info("running task", { task: request.taskId, cmd: request.cmd });
    const done = this.#executor.run(request, abort.signal).then(async (result) => {
      this.#log.info("task ended", {
        task: request.taskId,
        ...(result.outcome.kind === "exited"
          ? { exit_code: result.outcome.exitCode, signal: result.outcome.signal }
          : { error: result.outcome.error }),
      });
      await this.#outbox.add({ taskId: request.taskId, attempt: request.attempt, result });
    }).catch((e) => {
      this.#log.error("cannot record a task's result", { task: request.taskId, cause: e });
    }).finally(() => this.#running.delete(key));
    this.#running.set(key, { abort, done });
  }

  /** Stops every running task (SIGTERM) and waits until their results are in the outbox. */
  async stopAll(): Promise<void> {
    const running = [...this.#running.values()];
    for (const { abort } of running) abort.abort();
    await Promise.all(running.map((r) => r.done));
  }

  #remember(key: string): void {
    this.#seen.add(key);
    if (this.#seen.size > 10_000) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
  }
}
