/**
 * The manager's logic, free of RPC types: it stores tasks, places them on workers, sends
 * them, times acknowledgements, records results and watches worker liveness. The Connect
 * handlers in operator_service.ts and worker_service.ts are thin layers over this.
 */
import { createTaskIds } from "../shared/ids.ts";
import type { Logger } from "../shared/log.ts";
import type { ListTasksOptions, Store } from "../shared/store/store.ts";
import {
  isAssigned,
  newTask,
  type StopReason,
  type TaskEvent,
  type TaskOutput,
  transition,
} from "../shared/task_machine.ts";
import { formatDuration } from "../shared/duration.ts";
import { isFinal, type TaskRecord, type TaskSpec, type WorkerRecord } from "../shared/task.ts";
import { type Clock, systemClock } from "./clock.ts";
import { runTaskMessage } from "./convert.ts";
import type { SchedulerName } from "./config.ts";
import { FailedPreconditionError, InvalidArgumentError } from "./errors.ts";
import { type LogQuery, LogRelay, LogSourceLostError, LogsUnavailableError } from "./log_relay.ts";
import { createPlacer, createScorer, type Placer } from "./placement.ts";
import { type AttemptRef, planReconcile } from "./reconcile.ts";
import { TaskBook } from "./task_book.ts";
import { type WorkerIntroduction, WorkerRegistry } from "./worker_registry.ts";
import { WorkerSession } from "./worker_session.ts";

export interface ManagerOptions {
  store: Store;
  log: Logger;
  /** How often each connected worker is pinged. */
  pingIntervalMs: number;
  /** Silence longer than this marks a worker disconnected. */
  silenceTimeoutMs: number;
  /**
   * A worker disconnected for longer than this has its tasks given up (retried or dead
   * "lost"); unless no worker at all is connected, when the manager suspects itself.
   * Default: never.
   */
  lostTimeoutMs?: number;
  /** How long a worker has to acknowledge a task it was sent. */
  ackTimeoutMs: number;
  scheduler: SchedulerName;
  /** Time and timers; the system clock unless a test brings its own. */
  clock?: Clock;
  /** Randomness for the random scheduler and task ids. */
  random?: () => number;
}

export type { TaskSpec };

export interface LogOptions {
  follow: boolean;
  stderr: boolean;
  /** Only the last lines of what was printed so far; 0 for all. */
  tailLines: number;
}

/** A worker's report of how its attempt at a task ended. */
export interface TaskReport {
  workerId: string;
  taskId: string;
  attempt: number;
  outcome:
    | { kind: "exited"; exitCode: number; signal?: string; stoppedFor?: StopReason }
    | { kind: "start_failed"; error: string }
    | { kind: "abandoned"; error: string };
  output: TaskOutput;
}

/** More retries than this are refused: a task failing a hundred times needs a person. */
export const MAX_RETRIES = 100;

/** Batches larger than this are refused; they would not fit one message anyway. */
export const MAX_BATCH = 10_000;

export class Manager {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #options: ManagerOptions;
  readonly #book: TaskBook;
  readonly #workers: WorkerRegistry;
  readonly #placer: Placer;
  readonly #ackTimers = new Map<string, unknown>();
  readonly #retryTimers = new Map<string, unknown>();
  /** Set while no worker is connected: the manager suspects its own network, gives up nothing. */
  #suspectingSelf = false;
  /** Lost deadlines count from no earlier than this (the end of the last suspicion). */
  #lostClockFrom = 0;
  readonly #logs = new LogRelay();
  #ticker: unknown;
  #stopping = false;
  #pingSeq = 0n;

  constructor(options: ManagerOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#book = new TaskBook(options.store);
    this.#workers = new WorkerRegistry(options.store, options.log);
    this.#placer = createPlacer(createScorer(options.scheduler, this.#random));
  }

  /**
   * Reads the state back from the store and starts the timers. Acknowledgement deadlines run
   * from the stored assignment times, so a restart neither forgets nor extends them.
   */
  async start(): Promise<void> {
    const now = this.#clock.now();
    await this.#workers.load(now, this.#options.silenceTimeoutMs);
    const active = await this.#book.load();
    for (const task of active) {
      if (task.state === "pending" && isAssigned(task)) this.#startAckTimer(task, now);
    }
    const unplaced = active.filter((t) => t.state === "pending" && !isAssigned(t));
    for (const task of unplaced) this.#startRetryTimer(task, now);
    this.#ticker = this.#clock.setInterval(() => this.#tick(), this.#options.pingIntervalMs);
    this.#log.info("manager state loaded", {
      active_tasks: active.length,
      workers: this.#workers.list().length,
    });
  }

  /** Stops timers and ends every worker stream (workers reconnect to the next manager). */
  stop(): void {
    // Workers are not marked disconnected by a stopping manager: they will reconnect to the
    // next one, which gives them silence_timeout to do so.
    this.#stopping = true;
    if (this.#ticker !== undefined) this.#clock.clearInterval(this.#ticker);
    this.#ticker = undefined;
    for (const timers of [this.#ackTimers, this.#retryTimers]) {
      for (const timer of timers.values()) this.#clock.clearTimeout(timer);
      timers.clear();
    }
    for (const session of this.#workers.sessions()) session.close();
  }

  // --- operator side ---

  listWorkers(): { worker: WorkerRecord; runningTasks: number }[] {
    const counts = this.#book.countByWorker();
    return this.#workers.list().map((worker) => ({
      worker,
      runningTasks: counts.get(worker.id) ?? 0,
    }));
  }

  async listTasks(options: ListTasksOptions): Promise<TaskRecord[]> {
    return (await this.#store.listTasks(options)).map((e) => e.value);
  }

  async getTask(id: string): Promise<TaskRecord> {
    if (id === "") throw new InvalidArgumentError("a task id is required");
    return await this.#book.get(id);
  }

  /**
   * Stores a batch of tasks, all or none, each already placed on a worker (or dead when no
   * worker can take it), then sends each to its worker.
   */
  async schedule(specs: TaskSpec[]): Promise<TaskRecord[]> {
    validateSpecs(specs);
    const now = this.#clock.now();
    const ids = createTaskIds(specs.length, now, this.#random);
    const tasks = specs.map((spec, i) => this.#place(newTask(ids[i], spec, now)));
    await this.#book.create(tasks);
    for (const task of tasks) {
      if (task.state === "pending") this.#send(task);
      else this.#log.info("task not placed", { task: task.id, reason: task.deadReason });
    }
    return tasks;
  }

  // --- worker side ---

  /**
   * A worker introduced itself on a new stream, saying what it runs and which results are on
   * their way. The manager reconciles before the session can be given new tasks.
   */
  async openSession(
    workerId: string,
    address: string,
    intro: WorkerIntroduction,
    held: { running: AttemptRef[]; unreported: AttemptRef[] } = { running: [], unreported: [] },
  ): Promise<WorkerSession> {
    const session = new WorkerSession(workerId, address, this.#clock.now());
    const plan = planReconcile(workerId, this.#book.active(), held.running, held.unreported);
    for (const ref of plan.acknowledge) {
      await this.#apply(ref.taskId, { type: "ack", workerId, attempt: ref.attempt });
    }
    for (const ref of plan.lost) {
      const result = await this.#apply(ref.taskId, {
        type: "lost",
        workerId,
        attempt: ref.attempt,
        why: "its worker came back without it",
      });
      if (result.ok && result.changed) {
        this.#log.warn("task lost: its worker came back without it", {
          task: ref.taskId,
          worker: workerId,
          state: result.task.state,
        });
      }
    }
    await this.#workers.attach(session, intro, this.#clock.now());
    session.send({
      msg: { case: "welcome", value: { pingIntervalMs: this.#options.pingIntervalMs } },
    });
    for (const ref of plan.cancel) {
      session.send({
        msg: { case: "cancel", value: { taskId: ref.taskId, attempt: ref.attempt } },
      });
    }
    this.#log.info("worker connected", {
      worker: workerId,
      address,
      hostname: intro.hostname,
      running: held.running.length,
      unreported: held.unreported.length,
      stopping: plan.cancel.length || undefined,
    });
    return session;
  }

  /** The stream ended, or the manager ended it. */
  async closeSession(session: WorkerSession, why: string): Promise<void> {
    session.close();
    this.#logs.sessionClosed(session);
    if (this.#stopping) return;
    await this.#workers.detach(session, this.#clock.now(), why);
  }

  /** A chunk of logs a worker sent for a reader. */
  deliverLogs(session: WorkerSession, chunk: Parameters<LogRelay["deliver"]>[1]): void {
    this.#logs.deliver(session, chunk);
  }

  /**
   * Cancels tasks: all ids must exist (else nothing changes). A task on no worker, or whose
   * worker is gone, is dead at once; a running one when its worker has stopped its process.
   */
  async cancel(ids: string[]): Promise<TaskRecord[]> {
    if (ids.length === 0) throw new InvalidArgumentError("no task ids given");
    const tasks = await Promise.all(ids.map((id) => this.getTask(id)));
    const results: TaskRecord[] = [];
    for (const task of tasks) {
      if (isFinal(task.state)) {
        results.push(task);
        continue;
      }
      const session = task.workerId ? this.#workers.session(task.workerId) : undefined;
      const running = isAssigned(task) && session?.open;
      const result = await this.#apply(task.id, { type: running ? "cancel_requested" : "cancel" });
      const current = result.ok ? result.task : await this.getTask(task.id);
      if (running && result.ok && !isFinal(current.state)) {
        session!.send({
          msg: { case: "cancel", value: { taskId: task.id, attempt: task.attempt } },
        });
      }
      this.#log.info("task cancel requested", { task: task.id, state: current.state });
      results.push(current);
    }
    return results;
  }

  /**
   * What a task printed: from its worker while the worker is connected (live with `follow`),
   * else the tail stored with the task.
   */
  async *logs(id: string, options: LogOptions, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const task = await this.getTask(id);
    const session = task.workerId ? this.#workers.session(task.workerId) : undefined;
    if (session?.open && isAssigned(task)) {
      const query: LogQuery = { taskId: task.id, attempt: task.attempt, ...options };
      try {
        yield* this.#logs.read(session, query, signal);
        return;
      } catch (e) {
        // A worker without the logs (expired, or it never ran the task) still leaves the
        // stored tail; a worker lost mid-stream is the reader's to know about.
        if (!(e instanceof LogsUnavailableError)) throw e;
        this.#log.debug("worker has no logs; sending the stored tail", { task: id, why: e });
      }
    } else if (options.follow && !isFinal(task.state)) {
      throw new LogSourceLostError(
        `task ${id} is ${task.state} on worker ${
          task.workerId ?? "(none)"
        }, which is not connected`,
      );
    }
    const stored = await this.getTask(id);
    const text = options.stderr ? stored.stderr : stored.stdout;
    const data = new TextEncoder().encode(lastLines(text, options.tailLines));
    if (data.length > 0) yield data;
  }

  heard(session: WorkerSession): void {
    this.#workers.heard(session, this.#clock.now());
  }

  async acknowledge(session: WorkerSession, taskId: string, attempt: number): Promise<void> {
    const result = await this.#apply(taskId, {
      type: "ack",
      workerId: session.workerId,
      attempt,
    });
    if (!result.ok) {
      this.#log.warn("acknowledgement refused", { task: taskId, why: result.refusal.message });
    }
  }

  /** Records how a task ended. Idempotent; a stale report is refused. */
  async report(report: TaskReport): Promise<void> {
    if (report.workerId === "" || report.taskId === "" || report.attempt < 1) {
      throw new InvalidArgumentError("worker_id, task_id and attempt (1 or more) are required");
    }
    const event: TaskEvent = report.outcome.kind === "exited"
      ? {
        type: "exited",
        workerId: report.workerId,
        attempt: report.attempt,
        exitCode: report.outcome.exitCode,
        signal: report.outcome.signal,
        stoppedFor: report.outcome.stoppedFor,
        output: report.output,
      }
      : {
        type: report.outcome.kind,
        workerId: report.workerId,
        attempt: report.attempt,
        error: report.outcome.error,
        output: report.output,
      };
    const result = await this.#apply(report.taskId, event);
    if (!result.ok) throw new FailedPreconditionError(result.refusal.message);
    if (result.changed) {
      this.#log.info("task finished", {
        task: report.taskId,
        worker: report.workerId,
        state: result.task.state,
        exit_code: result.task.exitCode,
        reason: result.task.deadReason,
      });
    }
  }

  // --- internals ---

  #place(task: TaskRecord): TaskRecord {
    const placement = this.#placer.place(this.#workers.candidates());
    const event: TaskEvent = placement.ok
      ? { type: "assign", workerId: placement.workerId }
      : { type: "unplaceable", reason: placement.reason };
    const result = transition(task, event, this.#clock.now());
    // A new task is always pending and unplaced, so both events apply.
    if (!result.ok) throw new Error(`placing a new task: ${result.refusal.message}`);
    return result.task;
  }

  /** Places a task that is already stored (found unplaced at start-up). */
  /** Places a stored task waiting for (another) attempt; with no worker at all, it waits. */
  async #placeStored(task: TaskRecord): Promise<void> {
    const candidates = this.#workers.candidates();
    if (candidates.length === 0) {
      this.#startRetryTimer({ ...task, retryAt: this.#clock.now() + this.#options.pingIntervalMs });
      return;
    }
    const placement = this.#placer.place(candidates);
    const result = await this.#apply(
      task.id,
      placement.ok
        ? { type: "assign", workerId: placement.workerId }
        : { type: "unplaceable", reason: placement.reason },
    );
    if (result.ok && result.task.state === "pending") this.#send(result.task);
  }

  #send(task: TaskRecord): void {
    this.#startAckTimer(task, this.#clock.now());
    const session = task.workerId ? this.#workers.session(task.workerId) : undefined;
    const sent = session?.send({
      msg: {
        case: "run",
        value: runTaskMessage(task),
      },
    });
    // An unsent task is left to its acknowledgement deadline, which says what happened.
    if (!sent) this.#log.warn("worker gone before its task was sent", { task: task.id });
  }

  #startAckTimer(task: TaskRecord, now: number): void {
    const deadline = (task.assignedAt ?? now) + this.#options.ackTimeoutMs;
    const attempt = task.attempt;
    const timer = this.#clock.setTimeout(async () => {
      if (this.#ackTimers.get(task.id) === timer) this.#ackTimers.delete(task.id);
      if (this.#workers.sessions().length === 0) {
        // With every worker silent the fault is likely the manager's: wait for one to speak.
        this.#startAckTimer({ ...task, assignedAt: this.#clock.now() }, this.#clock.now());
        return;
      }
      try {
        const result = await this.#apply(task.id, {
          type: "ack_timeout",
          attempt,
          timeoutMs: this.#options.ackTimeoutMs,
        });
        if (result.ok && result.changed) {
          this.#log.warn("task not acknowledged in time", {
            task: task.id,
            worker: task.workerId,
          });
        }
      } catch (e) {
        // The store is down: try again later rather than forget the deadline.
        this.#log.warn("cannot store acknowledgement timeout yet", { task: task.id, cause: e });
        this.#startAckTimer({ ...task, assignedAt: this.#clock.now() }, this.#clock.now());
      }
    }, Math.max(0, deadline - now));
    const previous = this.#ackTimers.get(task.id);
    if (previous !== undefined) this.#clock.clearTimeout(previous);
    this.#ackTimers.set(task.id, timer);
  }

  /** Places a task waiting to be retried when its backoff has passed. */
  #startRetryTimer(task: TaskRecord, now = this.#clock.now()): void {
    const previous = this.#retryTimers.get(task.id);
    if (previous !== undefined) this.#clock.clearTimeout(previous);
    const timer = this.#clock.setTimeout(async () => {
      if (this.#retryTimers.get(task.id) === timer) this.#retryTimers.delete(task.id);
      try {
        await this.#placeStored(await this.#book.get(task.id));
      } catch (e) {
        this.#log.warn("cannot place a task yet", { task: task.id, cause: e });
        this.#startRetryTimer({ ...task, retryAt: this.#clock.now() + this.#options.ackTimeoutMs });
      }
    }, Math.max(0, (task.retryAt ?? now) - now));
    this.#retryTimers.set(task.id, timer);
  }

  async #apply(taskId: string, event: TaskEvent) {
    const result = await this.#book.apply(taskId, event, this.#clock.now());
    if (!result.ok || !result.changed) return result;
    const task = result.task;
    if (task.state !== "pending" || !isAssigned(task)) {
      const timer = this.#ackTimers.get(taskId);
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      this.#ackTimers.delete(taskId);
    }
    if (task.state === "pending" && !isAssigned(task) && task.retryAt !== undefined) {
      this.#log.info("task will be retried", { task: taskId, at: new Date(task.retryAt) });
      this.#startRetryTimer(task);
    }
    return result;
  }

  /**
   * Gives up the tasks of workers disconnected for longer than lost_timeout, unless no worker
   * is connected at all: then the manager suspects its own network and waits, and once a
   * worker is heard again every deadline starts afresh.
   */
  async #giveUpLost(now: number): Promise<void> {
    const lostMs = this.#options.lostTimeoutMs;
    if (lostMs === undefined) return;
    const counts = this.#book.countByWorker();
    const overdue = this.#workers.list().filter((w) =>
      w.state === "disconnected" && (counts.get(w.id) ?? 0) > 0 &&
      Math.max(w.disconnectedAt ?? w.lastSeenAt, this.#lostClockFrom) + lostMs <= now
    );
    if (this.#workers.sessions().length === 0) {
      if (overdue.length > 0 && !this.#suspectingSelf) {
        this.#log.warn(
          "every worker is silent: suspecting the manager's own network, giving up nothing until a worker is heard again",
          { workers_overdue: overdue.length },
        );
        this.#suspectingSelf = true;
      }
      return;
    }
    if (this.#suspectingSelf) {
      this.#suspectingSelf = false;
      this.#lostClockFrom = now;
      this.#log.info("a worker is heard again; lost deadlines start afresh");
      return;
    }
    for (const worker of overdue) {
      for (const task of this.#book.active()) {
        if (task.workerId !== worker.id) continue;
        const result = await this.#apply(task.id, {
          type: "lost",
          workerId: worker.id,
          attempt: task.attempt,
          why: `worker ${worker.id} disconnected for more than ${formatDuration(lostMs)}`,
        });
        if (result.ok && result.changed) {
          this.#log.warn("task lost with its worker", {
            task: task.id,
            worker: worker.id,
            state: result.task.state,
          });
        }
      }
    }
  }

  async #tick(): Promise<void> {
    const now = this.#clock.now();
    const seq = ++this.#pingSeq;
    for (const session of this.#workers.sessions()) {
      session.send({ msg: { case: "ping", value: { seq } } });
    }
    try {
      const silent = await this.#workers.sweep(now, this.#options.silenceTimeoutMs);
      for (const session of silent) {
        await this.closeSession(
          session,
          `silent for more than ${formatDuration(this.#options.silenceTimeoutMs)}`,
        );
      }
      await this.#giveUpLost(now);
    } catch (e) {
      this.#log.warn("liveness sweep failed", { cause: e });
    }
  }
}

function validateSpecs(specs: TaskSpec[]): void {
  if (specs.length === 0) throw new InvalidArgumentError("no tasks given");
  if (specs.length > MAX_BATCH) {
    throw new InvalidArgumentError(
      `${specs.length} tasks in one batch; at most ${MAX_BATCH} are accepted`,
    );
  }
  specs.forEach((spec, i) => {
    const problem = specProblem(spec);
    if (problem) throw new InvalidArgumentError(`task ${i + 1}: ${problem}`);
  });
}

/** What is wrong with a spec, in plain words naming the bad value; undefined when nothing. */
function specProblem(spec: TaskSpec): string | undefined {
  if (spec.cmd.trim() === "") return "cmd is empty";
  const env = Object.entries(spec.env ?? {});
  const texts = [spec.cmd, ...spec.params, spec.cwd ?? "", ...env.flat()];
  const withNul = texts.find((s) => s.includes("\0"));
  if (withNul !== undefined) {
    return `${JSON.stringify(withNul)} contains a NUL byte, which no command can take`;
  }
  for (const [key] of env) {
    if (key === "" || key.includes("=")) {
      return `env key ${JSON.stringify(key)} is not a variable name (empty, or contains "=")`;
    }
  }
  if (spec.cwd && !spec.cwd.startsWith("/")) {
    return `cwd ${JSON.stringify(spec.cwd)} is not an absolute path`;
  }
  if (
    spec.retries !== undefined && (!Number.isInteger(spec.retries) || spec.retries > MAX_RETRIES)
  ) {
    return `retries ${spec.retries} is more than the maximum of ${MAX_RETRIES}`;
  }
  for (
    const [name, ms] of [
      ["timeout", spec.timeoutMs],
      ["kill_timeout", spec.killTimeoutMs],
      ["retry_backoff", spec.retryBackoffMs],
    ]
  ) {
    if (ms !== undefined && (!Number.isFinite(ms as number) || (ms as number) < 0)) {
      return `${name} ${ms}ms is negative`;
    }
  }
  return undefined;
}

/** The last `count` lines of `text` (all of it for 0). */
export function lastLines(text: string, count: number): string {
  if (count <= 0) return text;
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  const lines = body.split("\n");
  if (lines.length <= count) return text;
  return lines.slice(-count).join("\n") + (text.endsWith("\n") ? "\n" : "");
}
