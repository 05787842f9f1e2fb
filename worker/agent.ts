/**
 * What the worker does with the tasks it is sent: run each attempt once, with its output in
 * the task's log files and its process recorded in state_dir/running.jsonl while it runs, stop it
 * when asked, and hand the result to the outbox. A task sent again (the manager restarted, say)
 * is acknowledged again but not run twice. Nothing here depends on the stream to the manager:
 * a stream that drops leaves the running attempts and their results alone.
 */
import type { Logger } from "../shared/log.ts";
import { MOVED_TO_IDLE_SLOT } from "../shared/task.ts";
import {
  DEFAULT_KILL_TIMEOUT_MS,
  type Executor,
  notStartedResult,
  type OutputSinks,
  type ProcessSpec,
  type RunningProcess,
  type Termination,
} from "./executor.ts";
import type { LogStore } from "./log_store.ts";
import type { ReportOutbox } from "./report_outbox.ts";
import type { QueuedRecords } from "./queued_records.ts";
import type { RunningRecords } from "./running_records.ts";

/** A task to run; `priority` orders the queue (higher first, then in the order they came). */
export type RunRequest = ProcessSpec & { priority?: number };

/** One attempt at a task (the TaskRef of the protocol). */
export interface AttemptRef {
  taskId: string;
  attempt: number;
}

export interface AgentOptions {
  executor: Executor;
  outbox: ReportOutbox;
  /** Where each attempt's output is kept; without it, only the report's tail is kept. */
  logs?: LogStore;
  /**
   * Where each running process is recorded for the next life of the worker; without it, a
   * worker killed with SIGKILL leaves its tasks' processes behind, unknown.
   */
  records?: RunningRecords;
  /**
   * Attempts a previous life of this worker ran (their reports are in the outbox). Sent again,
   * they are acknowledged but not run a second time.
   */
  alreadyRun?: Iterable<AttemptRef>;
  /**
   * How many tasks this worker offers to run at once (its capacity's slots). The manager keeps
   * to it and the queue; the agent runs whatever it is sent beyond both, and warns.
   */
  slots?: number;
  /**
   * How many tasks beyond its slots this worker holds (its capacity's queue; absent: none).
   * They are acknowledged on arrival and started as slots free, highest priority first, then
   * in the order they came.
   */
  queue?: number;
  /**
   * Where queued attempts are recorded for the next life of the worker; without it, a worker
   * killed with SIGKILL forgets its queue, and the manager takes those attempts for lost.
   */
  queuedRecords?: QueuedRecords;
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
  /** Attempts whose process has not ended yet (received, starting or running). */
  readonly #active = new Set<string>();
  /** Attempts this worker has run (bounded: only recent ones matter for repeats). */
  readonly #seen = new Set<string>();
  /** Attempts waiting for a free slot, by key, in the order they came. */
  readonly #queued = new Map<string, RunRequest>();

  constructor(options: AgentOptions) {
    this.#options = options;
    for (const ref of options.alreadyRun ?? []) this.#remember(attemptKey(ref.taskId, ref.attempt));
  }

  get running(): number {
    return this.#running.size;
  }

  /**
   * How many attempts take a slot now: from the moment one is received until its process
   * ends (its report may still be on its way).
   */
  get active(): number {
    return this.#active.size;
  }

  /** How many attempts wait in the queue for a free slot. */
  get queued(): number {
    return this.#queued.size;
  }

  /**
   * The attempts this worker holds now: queued, or running from the moment one is received
   * (still starting) until its report is in the outbox.
   */
  runningAttempts(): AttemptRef[] {
    return [...this.#running.keys(), ...this.#queued.keys()].map(parseAttemptKey);
  }

  /**
   * The attempts waiting in the queue (a subset of runningAttempts), for the manager to know
   * which have not started.
   */
  queuedAttempts(): AttemptRef[] {
    return [...this.#queued.keys()].map(parseAttemptKey);
  }

  /**
   * Called as each queued attempt starts (the connection tells the manager), or undefined.
   * One listener: the stream of the moment.
   */
  onQueuedStart: ((taskId: string, attempt: number) => void) | undefined;

  /**
   * Starts the task, or queues it, unless this attempt is already known; the caller
   * acknowledges. True when the attempt waits in the queue.
   */
  run(request: RunRequest): boolean {
    const log = this.#options.log;
    const key = attemptKey(request.taskId, request.attempt);
    if (this.#seen.has(key)) {
      log.debug("task sent again; not running it twice", { task: request.taskId });
      return this.#queued.has(key);
    }
    this.#remember(key);
    const { slots, queue = 0 } = this.#options;
    if (slots !== undefined && this.#active.size >= slots && this.#queued.size < queue) {
      this.#queued.set(key, request);
      this.#journalQueued(request, true);
      this.#options.logs?.queue(request.taskId, request.attempt);
      log.info("task queued until a slot frees", {
        task: request.taskId,
        attempt: request.attempt,
        running: this.#active.size,
        queued: this.#queued.size,
      });
      return true;
    }
    // Journaled as queued until its running record is written (#runAttempt): the log files
    // are opened first, and a SIGKILL meanwhile should give it back unstarted, not lose it.
    this.#journalQueued(request, true);
    this.#start(key, request);
    return false;
  }

  #start(key: string, request: RunRequest): void {
    const log = this.#options.log;
    const { slots } = this.#options;
    this.#active.add(key);
    log.info("running task", {
      task: request.taskId,
      attempt: request.attempt,
      cmd: request.cmd,
      running: this.#active.size,
      slots,
    });
    if (slots !== undefined && this.#active.size > slots) {
      log.warn(
        "the manager sent more tasks than this worker has slots and queue; running them anyway",
        { task: request.taskId, running: this.#active.size, slots },
      );
    }
    const running: Running = { done: Promise.resolve() };
    this.#running.set(key, running);
    running.done = this.#runAttempt(request, running).catch((e) => {
      log.error("cannot record a task's result", { task: request.taskId, cause: e });
    }).finally(() => {
      this.#running.delete(key);
      this.#free(key);
    });
  }

  /** The attempt's process is gone: its slot goes to the waiting task of highest priority. */
  #free(key: string): void {
    if (!this.#active.delete(key)) return;
    let next: [string, RunRequest] | undefined;
    // The queue is short (capacity.queue) and in arrival order: the first of the highest wins.
    for (const entry of this.#queued) {
      if (!next || (entry[1].priority ?? 0) > (next[1].priority ?? 0)) next = entry;
    }
    if (!next) return;
    const [nextKey, request] = next;
    this.#queued.delete(nextKey);
    // Its queued record stays until its running record is written (#runAttempt).
    this.#start(nextKey, request);
    this.onQueuedStart?.(request.taskId, request.attempt);
  }

  /**
   * Reports a queued attempt as given back, never started (the manager places it again, or
   * ends it when it was cancelled).
   */
  #giveBack(key: string, termination: Termination | undefined, reason: string): void {
    const request = this.#queued.get(key);
    if (!request) return;
    this.#queued.delete(key);
    this.#options.log.info("task given back unstarted", { task: request.taskId, reason });
    this.#options.outbox.add({
      taskId: request.taskId,
      attempt: request.attempt,
      result: notStartedResult(reason, Date.now(), termination),
    });
    // Only now: until the report is safe on disk, a restart must find the record.
    this.#journalQueued(request, false);
    this.#options.logs?.withdraw(request.taskId, request.attempt);
  }

  #journalQueued(request: RunRequest, queued: boolean): void {
    const records = this.#options.queuedRecords;
    if (!records) return;
    try {
      if (queued) records.add(request.taskId, request.attempt, Date.now());
      else records.remove(request.taskId, request.attempt);
    } catch (e) {
      this.#options.log.warn(
        "cannot record the worker's queue in state_dir/queued.jsonl; a restart would not find it",
        { task: request.taskId, cause: e },
      );
    }
  }

  /**
   * Gives back an attempt that still waits in the queue, unstarted, for the manager to place
   * elsewhere; `reason` becomes its outcome. One that has started, or is unknown, is left alone.
   */
  unqueue(taskId: string, attempt: number, reason = MOVED_TO_IDLE_SLOT): void {
    const key = attemptKey(taskId, attempt);
    if (!this.#queued.has(key)) {
      this.#options.log.debug("unqueue for an attempt not queued here; ignored", {
        task: taskId,
        attempt,
      });
      return;
    }
    this.#giveBack(key, undefined, reason);
  }

  /**
   * Stops a running attempt, or gives back a queued one unstarted; either is reported as
   * cancelled. Anything else is ignored.
   */
  cancel(taskId: string, attempt: number): void {
    const key = attemptKey(taskId, attempt);
    if (this.#queued.has(key)) {
      this.#giveBack(key, "cancelled", "cancelled while queued");
      return;
    }
    const running = this.#running.get(key);
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
   * Gives back every queued task and stops every running one (SIGTERM to each process group,
   * SIGKILL after its kill timeout), and waits until their results are in the outbox.
   */
  async stopAll(): Promise<void> {
    // First, so that no stopped task's slot starts one of them.
    for (const key of [...this.#queued.keys()]) {
      this.#giveBack(key, "worker_stopping", "the worker stopped");
    }
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
    this.#begin(request);
    // Only now: a SIGKILL before this finds the queued record (given back unstarted), and one
    // after it the running record. One just between the two finds both; the restart gives the
    // queued one precedence (main.ts), rightly, as nothing was spawned yet.
    this.#journalQueued(request, false);
    const process = executor.start(request, sinks);
    running.process = process;
    if (running.stopBeforeStart) process.stop(running.stopBeforeStart);
    const recorded = this.#record(request, process);
    const result = await process.result;
    // The slot is free once the process is gone, before the report leaves: the manager may
    // place the next task as soon as the report reaches it, and a queued one starts now.
    this.#free(attemptKey(request.taskId, request.attempt));
    await logs?.finish(request.taskId, request.attempt);
    log.info("task ended", {
      task: request.taskId,
      attempt: request.attempt,
      ...(result.outcome.kind === "exited"
        ? { exit_code: result.outcome.exitCode, signal: result.outcome.signal }
        : result.outcome.kind === "start_failed"
        ? { error: result.outcome.error }
        : { abandoned: result.outcome.reason }),
      termination: result.termination,
    });
    outbox.add({ taskId: request.taskId, attempt: request.attempt, result });
    // Only now: until the report is safe on disk, a restart must find the process's record.
    // And after the pid's record is written, which would otherwise outlive the removal.
    await recorded;
    try {
      this.#options.records?.remove(request.taskId, request.attempt);
    } catch (e) {
      log.warn("cannot remove a task's record from state_dir/running.jsonl", {
        task: request.taskId,
        cause: e,
      });
    }
  }

  /**
   * Records the attempt before its process exists, so that a SIGKILL between the spawn and
   * #record leaves a record for the next life.
   */
  #begin(request: RunRequest): void {
    const { records, log } = this.#options;
    if (!records) return;
    try {
      records.begin({
        taskId: request.taskId,
        attempt: request.attempt,
        startedAt: Date.now(),
        killTimeoutMs: request.killTimeoutMs ?? DEFAULT_KILL_TIMEOUT_MS,
      });
    } catch (e) {
      log.warn(
        "cannot record a task in state_dir/running.jsonl; a restart would not find it",
        { task: request.taskId, cause: e },
      );
    }
  }

  /** Records the process, with its pid, once it exists (in place of #begin's record). */
  async #record(request: RunRequest, process: RunningProcess): Promise<void> {
    const { records, log } = this.#options;
    if (!records) return;
    const spawned = await process.spawned;
    if (!spawned) return;
    try {
      await records.add({
        taskId: request.taskId,
        attempt: request.attempt,
        pid: spawned.pid,
        startedAt: spawned.startedAt,
        startTime: spawned.startTime,
        killTimeoutMs: request.killTimeoutMs ?? DEFAULT_KILL_TIMEOUT_MS,
      });
    } catch (e) {
      log.warn(
        "cannot record a running task in state_dir/running.jsonl; a restart would not find it",
        {
          task: request.taskId,
          cause: e,
        },
      );
    }
  }

  #remember(key: string): void {
    this.#seen.add(key);
    if (this.#seen.size > 10_000) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
  }
}

/** An attempt's key in the maps kept by attempt. */
export function attemptKey(taskId: string, attempt: number): string {
  return `${taskId}#${attempt}`;
}

function parseAttemptKey(key: string): AttemptRef {
  const hash = key.lastIndexOf("#");
  return { taskId: key.slice(0, hash), attempt: Number(key.slice(hash + 1)) };
}
