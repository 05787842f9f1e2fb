/**
 * What the worker does with the tasks it is sent: run each attempt once, with its output in
 * the task's log files, stop it when asked, and hand the result to the outbox. A task sent
 * again (the manager restarted, say) is acknowledged again but not run twice.
 */
import type { Logger } from "../shared/log.ts";
import type {
  Executor,
  OutputSinks,
  ProcessSpec,
  RunningProcess,
  Termination,
} from "./executor.ts";
import type { LogStore } from "./log_store.ts";
import type { ReportOutbox } from "./report_outbox.ts";

export type RunRequest = ProcessSpec;

export interface AgentOptions {
  executor: Executor;
  outbox: ReportOutbox;
  /** Where each attempt's output is kept; without it, only the report's tail is kept. */
  logs?: LogStore;
  log: Logger;
}

interface Running {
  /** Set once the process is started (its log files are opened first). */
  process?: RunningProcess;
  /** A stop asked for before the process was started. */
  stopBeforeStart?: Termination;
  done: Promise<void>;
}

export class Agent {
  readonly #options: AgentOptions;
  readonly #running = new Map<string, Running>();
  /** Attempts this worker has run (bounded: only recent ones matter for repeats). */
  readonly #seen = new Set<string>();

  constructor(options: AgentOptions) {
    this.#options = options;
  }

  get running(): number {
    return this.#running.size;
  }

  /** Starts the task unless this attempt is already known; the caller acknowledges. */
  run(request: RunRequest): void {
    const log = this.#options.log;
    const key = attemptKey(request.taskId, request.attempt);
    if (this.#seen.has(key)) {
      log.debug("task sent again; not running it twice", { task: request.taskId });
      return;
    }
    this.#remember(key);
    log.info("running task", { task: request.taskId, attempt: request.attempt, cmd: request.cmd });
    const running: Running = { done: Promise.resolve() };
    this.#running.set(key, running);
    running.done = this.#runAttempt(request, running).catch((e) => {
      log.error("cannot record a task's result", { task: request.taskId, cause: e });
    }).finally(() => this.#running.delete(key));
  }

  /** Stops a running attempt; the result is reported as cancelled. Anything else is ignored. */
  cancel(taskId: string, attempt: number): void {
    const running = this.#running.get(attemptKey(taskId, attempt));
    if (!running) {
      this.#options.log.debug("cancel for an attempt that is not running here; ignored", {
        task: taskId,
        attempt,
      });
      return;
    }
    this.#options.log.info("cancelling task", { task: taskId, attempt });
    this.#stop(running, "cancelled");
  }

  /**
   * Stops every running task (SIGTERM to each process group, SIGKILL after its kill timeout)
   * and waits until their results are in the outbox.
   */
  async stopAll(): Promise<void> {
    const running = [...this.#running.values()];
    for (const r of running) this.#stop(r, "worker_stopping");
    await Promise.all(running.map((r) => r.done));
  }

  #stop(running: Running, termination: Termination): void {
    if (running.process) running.process.stop(termination);
    else running.stopBeforeStart ??= termination;
  }

  async #runAttempt(request: RunRequest, running: Running): Promise<void> {
    const { log, logs, outbox, executor } = this.#options;
    let sinks: OutputSinks = {};
    if (logs) {
      try {
        sinks = await logs.open(request.taskId, request.attempt);
      } catch (e) {
        log.warn("cannot create a task's log files; running it without", {
          task: request.taskId,
          cause: e,
        });
      }
    }
    const process = executor.start(request, sinks);
    running.process = process;
    if (running.stopBeforeStart) process.stop(running.stopBeforeStart);
    const result = await process.result;
    await logs?.finish(request.taskId, request.attempt);
    log.info("task ended", {
      task: request.taskId,
      attempt: request.attempt,
      ...(result.outcome.kind === "exited"
        ? { exit_code: result.outcome.exitCode, signal: result.outcome.signal }
        : { error: result.outcome.error }),
      termination: result.termination,
    });
    await outbox.add({ taskId: request.taskId, attempt: request.attempt, result });
  }

  #remember(key: string): void {
    this.#seen.add(key);
    if (this.#seen.size > 10_000) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
  }
}

function attemptKey(taskId: string, attempt: number): string {
  return `${taskId}#${attempt}`;
}
