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
import { labelKeyProblem, labelValueProblem } from "../shared/labels.ts";
import {
  type Capacity,
  isFinal,
  MOVED_TO_IDLE_SLOT,
  type TaskRecord,
  type TaskSpec,
  waitingSince,
  type WorkerRecord,
} from "../shared/task.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { DeadlineTimers } from "../shared/deadline_timers.ts";
import { runTaskMessage } from "./convert.ts";
import type { SchedulerName } from "./config.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "./errors.ts";
import {
  AttemptGivenBackError,
  type LogQuery,
  LogRelay,
  LogSourceLostError,
  LogsUnavailableError,
} from "./log_relay.ts";
import {
  candidateOf,
  CandidatePool,
  couldRunOn,
  createPlacer,
  createScorer,
  fitsElsewhere,
  neverFits,
  type Placer,
} from "./placement.ts";
import { type AttemptRef, planReconcile } from "./reconcile.ts";
import { type ApplyOptions, TaskBook } from "./task_book.ts";
import { type WorkerIntroduction, WorkerRegistry } from "./worker_registry.ts";
import { type Outgoing, type SessionSink, WorkerSession } from "./worker_session.ts";
import { UsageLedger } from "./usage_ledger.ts";
import { compareQueueOrder } from "./active_tasks.ts";

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
  /** The label the spread scheduler spreads across (default "rack"). */
  spreadLabel?: string;
  /** How long a task may wait to be placed unless it says otherwise (default: 5 minutes). */
  scheduleTimeoutMs?: number;
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
    | { kind: "abandoned"; error: string }
    /** Given back from the worker's queue: cancelled, or its worker stopped. */
    | { kind: "not_started"; reason: string };
  output: TaskOutput;
}

/** A worker as the API shows it: its record and what its unfinished tasks take. */
export interface WorkerView {
  worker: WorkerRecord;
  runningTasks: number;
  used: Capacity;
}

/** Indexes of `tasks` in placement order: higher priority first, then older, then by id. */
function byPriority(tasks: TaskRecord[]): number[] {
  return tasks.map((_, i) => i).sort((a, b) => compareQueueOrder(tasks[a], tasks[b]));
}

/** What a waiting task is told while every worker's slots are taken. */
const NO_FREE_SLOT = "every worker's slots are taken";

/**
 * Each session is pinged once per ping interval, in one of this many slices of it: a burst of
 * every worker's ping and pong at once delays whatever else the manager is doing.
 */
const PING_SLICES = 10;

/** A held message (see WorkerSession.hold) waits at most this long, whatever the interval. */
const MAX_HOLD_MS = 2_000;

/** A session holds at most this many messages; one more sends them all. */
const MAX_HELD = 16;

/** More retries than this are refused: a task failing a hundred times needs a person. */
export const MAX_RETRIES = 100;

/** Batches larger than this are refused; they would not fit one message anyway. */
export const MAX_BATCH = 10_000;

/**
 * The longest GetTask waits for a task's end: a client waits longer by asking again, and
 * proxies that end quiet requests after a minute or so never see one this long.
 */
export const MAX_GET_TASK_WAIT_MS = 60_000;

/** The outcomes of attempts a worker gave back from its queue at the manager's word. */
const DRAINING_UNQUEUED = "its worker is draining";
const OVERTAKEN_UNQUEUED = "a task of higher priority took its place";
/** How often a follower of an attempt given back looks for the give-back to be stored. */
const GIVE_BACK_POLL_MS = 50;
/** How many waiting tasks one tick looks at for a queued task of lower priority to replace. */
const MAX_OVERTAKE_CHECKS = 256;

export class Manager {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #options: ManagerOptions;
  /**
   * Whether answers may wait for a ping round. The rounds come every tenth of the ping
   * interval: with a long interval they would come too seldom to keep MAX_HOLD_MS.
   */
  readonly #holdsAnswers: boolean;
  readonly #book: TaskBook;
  readonly #workers: WorkerRegistry;
  readonly #placer: Placer;
  /**
   * Deadlines by task (or worker) id: each kind shares one runtime timer (DeadlineTimers),
   * since a task sent sets one and its acknowledgement clears it, thousands a second.
   */
  readonly #ackDeadlines: DeadlineTimers<string>;
  readonly #retryTimers: DeadlineTimers<string>;
  /** Acknowledgements received while the store could not take them. */
  readonly #unstoredAcks = new Map<string, { session: WorkerSession; attempt: number }>();
  readonly #scheduleTimers: DeadlineTimers<string>;
  readonly #drainTimers: DeadlineTimers<string>;
  /** Why each waiting task is not placed yet, as of the last try. */
  readonly #diagnoses = new Map<string, string>();
  /**
   * Set when the last run of the queue stopped at a cluster with every slot taken: the tasks
   * after that point, without a diagnosis of their own, wait for a free slot. (Stopping there
   * keeps a run from reading a long queue to its end for every finished task.)
   */
  #queueStoppedFull = false;
  /** The candidate pool and the workers' version it was built at (see #candidates). */
  #pool: { pool: CandidatePool; version: number } | undefined;
  /**
   * Room the book's usage does not show yet: taken by placements being stored (a batch, an
   * assignment), so that rounds placing meanwhile see it taken; and given back by attempts
   * whose end a worker reported while that end is being stored. Their process is gone, so
   * the next task is placed at once, and its assignment can share the write of that end.
   */
  readonly #reserved = new UsageLedger();
  /** Tasks whose assignment is being written; a round of the queue skips them. */
  readonly #placing = new Set<string>();
  /** Set while no worker is connected: the manager suspects its own network, gives up nothing. */
  #suspectingSelf = false;
  /** Lost deadlines count from no earlier than this (the end of the last suspicion). */
  #lostClockFrom = 0;
  readonly #logs = new LogRelay();
  #ticker: unknown;
  /** Attempts a worker was asked to give back from its queue (see #rebalanceQueues). */
  readonly #unqueueAsked = new Map<string, number>();
  /** The attempts waiting in their workers' queues, not started yet, by task id. */
  readonly #inWorkerQueue = new Map<string, number>();
  /** When each task asked back for one of higher priority was asked (see #yieldToPriority). */
  readonly #overtakenAt = new Map<string, number>();
  #pingSlice = 0;
  #nextPingPhase = 0;
  #stopping = false;
  #pingSeq = 0n;

  constructor(options: ManagerOptions) {
    this.#options = options;
    this.#holdsAnswers = options.pingIntervalMs / PING_SLICES <= MAX_HOLD_MS / 2;
    this.#store = options.store;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
    this.#ackDeadlines = new DeadlineTimers(this.#clock);
    this.#retryTimers = new DeadlineTimers(this.#clock);
    this.#scheduleTimers = new DeadlineTimers(this.#clock);
    this.#drainTimers = new DeadlineTimers(this.#clock);
    this.#random = options.random ?? Math.random;
    this.#book = new TaskBook(options.store, {
      clock: this.#clock,
      onDeferredWriteError: (cause) =>
        this.#log.warn("cannot store acknowledgements yet; will retry", { cause }),
    });
    this.#workers = new WorkerRegistry(options.store, options.log);
    this.#placer = createPlacer(
      createScorer(options.scheduler, { random: this.#random, spreadLabel: options.spreadLabel }),
    );
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
    for (const task of active.filter((t) => t.state === "pending" && !isAssigned(t))) {
      this.#startScheduleTimer(task, now);
      if (task.retryAt !== undefined) this.#startRetryTimer(task, now);
    }
    for (const worker of this.#workers.list()) {
      if (worker.draining && worker.drainDeadline !== undefined) this.#startDrainTimer(worker);
    }
    this.#ticker = this.#clock.setInterval(
      () => this.#ping(),
      this.#options.pingIntervalMs / PING_SLICES,
    );
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
    const all = [this.#ackDeadlines, this.#retryTimers, this.#scheduleTimers, this.#drainTimers];
    for (const timers of all) timers.clearAll();
    for (const session of this.#workers.sessions()) session.close();
    this.#book.close();
  }

  /**
   * Stores the acknowledgements still held in memory (see acknowledge), so that the store is
   * up to date for the next manager; one that cannot be stored now is learnt again from the
   * worker's Hello. The manager calls it after stop, before the store is closed.
   */
  async writeDeferred(): Promise<void> {
    await this.#book.writeDeferred();
  }

  // --- operator side ---

  listWorkers(): WorkerView[] {
    return this.#workers.list().map((worker) => {
      const used = { ...this.#book.usageOf(worker.id) };
      return { worker, runningTasks: used.slots, used };
    });
  }

  /** One worker with its unfinished tasks. */
  getWorker(id: string): { view: WorkerView; tasks: TaskRecord[] } {
    const view = this.listWorkers().find((w) => w.worker.id === id);
    if (!view) throw new NotFoundError(`worker "${id}" not found`);
    const tasks = this.#book.active().filter((t) => t.workerId === id).map((t) =>
      this.#withDiagnosis(t)
    );
    return { view, tasks };
  }

  /** Takes a worker out of service; past `deadlineMs`, what still runs on it is cancelled. */
  async drainWorker(id: string, deadlineMs?: number): Promise<WorkerView> {
    if (deadlineMs !== undefined && !(deadlineMs >= 0)) {
      throw new InvalidArgumentError(`drain deadline ${deadlineMs}ms is negative`);
    }
    const now = this.#clock.now();
    const worker = await this.#workers.setDraining(id, {
      draining: true,
      drainDeadline: deadlineMs === undefined ? undefined : now + deadlineMs,
    });
    this.#drainTimers.clear(id);
    if (worker.drainDeadline !== undefined) this.#startDrainTimer(worker);
    this.#log.info("worker draining", { worker: id, deadline: deadlineMs });
    return this.getWorker(id).view;
  }

  async undrainWorker(id: string): Promise<WorkerView> {
    await this.#workers.setDraining(id, { draining: false, drainDeadline: undefined });
    this.#drainTimers.clear(id);
    this.#log.info("worker back in service", { worker: id });
    this.#drainQueue();
    return this.getWorker(id).view;
  }

  /** Forgets a disconnected worker that holds no unfinished task (see WorkerRegistry.remove). */
  async removeWorker(id: string): Promise<void> {
    await this.#workers.remove(id, () => this.#book.countByWorker().get(id) ?? 0);
    this.#drainTimers.clear(id);
    this.#log.info("worker removed", { worker: id });
  }

  async listTasks(options: ListTasksOptions): Promise<TaskRecord[]> {
    return (await this.#store.listTasks(options)).map((e) => this.#withDiagnosis(e.value));
  }

  /**
   * A task as it is now; with `waitMs`, a task not yet done or dead as it is once its end is
   * stored, or when `waitMs` has passed or `signal` aborted (the client went away).
   */
  async getTask(id: string, wait?: { ms: number; signal?: AbortSignal }): Promise<TaskRecord> {
    if (id === "") throw new InvalidArgumentError("a task id is required");
    if (wait && !(wait.ms >= 0 && wait.ms <= MAX_GET_TASK_WAIT_MS)) {
      throw new InvalidArgumentError(
        `wait ${formatDuration(wait.ms)} is not between 0 and the maximum of ${
          formatDuration(MAX_GET_TASK_WAIT_MS)
        }`,
      );
    }
    let task = await this.#book.get(id);
    if (wait && wait.ms > 0 && !isFinal(task.state) && !this.#stopping) {
      await this.#book.untilFinal(id, wait.ms, wait.signal);
      task = await this.#book.get(id);
    }
    return this.#withDiagnosis(task);
  }

  /**
   * Stores a batch of tasks, all or none, then sends each placed one to its worker. When no
   * task is waiting already, the batch is placed before it is stored (one write per task); a
   * task that fits nowhere now waits, in order of priority then age, for schedule_timeout. A
   * task no worker ever seen could run is refused, unless it asks to queue.
   */
  async schedule(specs: TaskSpec[]): Promise<TaskRecord[]> {
    validateSpecs(specs);
    const candidates = this.#candidates();
    specs.forEach((spec, i) => {
      const why = spec.queue ? undefined : neverFits(candidates, spec);
      if (why) {
        throw new InvalidArgumentError(
          `task ${i + 1} can never be placed: ${why}; queue it to wait for such a worker`,
        );
      }
    });
    const now = this.#clock.now();
    const ids = createTaskIds(specs.length, now, this.#random);
    const tasks = specs.map((spec, i) => newTask(ids[i], spec, now));
    const queueIsEmpty = this.#book.waitingCount === 0;
    if (queueIsEmpty) {
      for (const i of byPriority(tasks)) tasks[i] = this.#placeNew(tasks[i], candidates);
    }
    try {
      await this.#book.create(tasks);
    } finally {
      for (const task of tasks) if (isAssigned(task)) this.#reserved.add(task.workerId!, task, -1);
    }
    for (const task of tasks) {
      if (isAssigned(task)) this.#send(task);
      else this.#startScheduleTimer(task, now);
    }
    if (!queueIsEmpty) this.#drainQueue();
    return tasks.map((t) => this.#withDiagnosis(t));
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
    held: { running: AttemptRef[]; unreported: AttemptRef[]; queued?: AttemptRef[] } = {
      running: [],
      unreported: [],
    },
    sink?: SessionSink,
  ): Promise<WorkerSession> {
    const session = new WorkerSession(workerId, address, this.#clock.now(), sink);
    session.pingPhase = this.#nextPingPhase++ % PING_SLICES;
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
    // What waits in its queue now (a new manager learns it here; the acknowledgements that
    // follow keep it up to date).
    for (const ref of held.running) {
      if (this.#inWorkerQueue.get(ref.taskId) === ref.attempt) {
        this.#inWorkerQueue.delete(ref.taskId);
      }
    }
    for (const ref of held.queued ?? []) {
      const task = this.#book.peek(ref.taskId);
      if (
        task && task.workerId === workerId && task.attempt === ref.attempt && !isFinal(task.state)
      ) {
        this.#inWorkerQueue.set(ref.taskId, ref.attempt);
      }
    }
    await this.#workers.attach(session, intro, this.#clock.now());
    session.send({
      msg: {
        case: "welcome",
        value: { pingIntervalMs: this.#options.pingIntervalMs, acceptsReports: true },
      },
    });
    for (const ref of plan.cancel) {
      session.send({
        msg: { case: "cancel", value: { taskId: ref.taskId, attempt: ref.attempt } },
      });
    }
    this.#drainQueue();
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

  /**
   * The stream ended, or the manager ended it; `drop` ends a silent worker's stream by
   * dropping its connection (WorkerSession.drop).
   */
  async closeSession(session: WorkerSession, why: string, drop = false): Promise<void> {
    if (drop) session.drop();
    else session.close();
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
    let task = await this.getTask(id);
    for (;;) {
      // Following a task that waits for a worker waits with it (`--wait` on a queued task).
      while (options.follow && task.state === "pending" && !isAssigned(task)) {
        if (!await this.#pause(this.#options.pingIntervalMs, signal)) return;
        task = await this.getTask(id);
      }
      if (signal.aborted) return;
      const session = task.workerId ? this.#workers.session(task.workerId) : undefined;
      if (session?.open && isAssigned(task)) {
        const query: LogQuery = { taskId: task.id, attempt: task.attempt, ...options };
        try {
          yield* this.#logs.read(session, query, signal);
          return;
        } catch (e) {
          // Given back from a worker's queue unstarted: the follow goes on with the next
          // attempt, once the give-back is stored.
          if (e instanceof AttemptGivenBackError) {
            if (!options.follow) break;
            const given = task;
            do {
              if (!await this.#pause(GIVE_BACK_POLL_MS, signal)) return;
              task = await this.getTask(id);
            } while (
              task.attempt === given.attempt && isAssigned(task) && task.workerId === given.workerId
            );
            if (isFinal(task.state)) break;
            continue;
          }
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
      break;
    }
    const stored = await this.getTask(id);
    const text = options.stderr ? stored.stderr : stored.stdout;
    const data = new TextEncoder().encode(lastLines(text, options.tailLines));
    if (data.length > 0) yield data;
  }

  /** Waits `ms` on the manager's clock; false when `signal` aborted it. */
  #pause(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = this.#clock.setTimeout(() => done(true), ms);
      const onAbort = () => {
        this.#clock.clearTimeout(timer);
        done(false);
      };
      function done(waited: boolean) {
        signal.removeEventListener("abort", onAbort);
        resolve(waited);
      }
      signal.addEventListener("abort", onAbort);
    });
  }

  heard(session: WorkerSession): void {
    this.#workers.heard(session, this.#clock.now());
  }

  /**
   * Sends a message that may wait for the next one to the same worker, or for its ping round:
   * an answer to a report (the worker holds the report on disk until then, and waits 10s).
   */
  sendSoon(session: WorkerSession, message: Outgoing): void {
    if (!this.#holdsAnswers) {
      session.send(message);
      return;
    }
    session.hold(message, this.#clock.now());
    if (session.heldCount >= MAX_HELD) session.sendHeld();
  }

  /**
   * A worker acknowledged an attempt. One that cannot be stored yet is kept and stored later
   * (its deadline waits for it); one for an attempt that is no longer the worker's is
   * answered with a cancel, so a stale attempt does not run on beside a newer one.
   */
  async acknowledge(
    session: WorkerSession,
    taskId: string,
    attempt: number,
    queued = false,
  ): Promise<void> {
    if (!queued && this.#inWorkerQueue.get(taskId) === attempt) {
      // A queued attempt started; its first acknowledgement was taken already.
      this.#inWorkerQueue.delete(taskId);
      return;
    }
    let result;
    try {
      // Deferred: a short task's result carries its acknowledgement in the same store write.
      result = await this.#apply(
        taskId,
        { type: "ack", workerId: session.workerId, attempt },
        { defer: true },
      );
    } catch (e) {
      this.#unstoredAcks.set(taskId, { session, attempt });
      this.#log.warn("cannot store an acknowledgement yet; will retry", { task: taskId, cause: e });
      return;
    }
    this.#unstoredAcks.delete(taskId);
    if (result.ok && queued && !isFinal(result.task.state)) {
      this.#inWorkerQueue.set(taskId, attempt);
    }
    if (!result.ok) {
      this.#log.warn("acknowledgement refused; stopping that attempt", {
        task: taskId,
        why: result.refusal.message,
      });
      session.send({ msg: { case: "cancel", value: { taskId, attempt } } });
    }
  }

  /** Forgets finished tasks that were removed from the store. */
  forgetFinished(ids: Iterable<string>): void {
    this.#book.forgetFinished(ids);
  }

  /**
   * Removes a finished task from the store, as task_retention does later; refused for one
   * not finished. The store's copy decides: a finished task's end is never left unwritten.
   */
  async removeTask(id: string): Promise<void> {
    if (id === "") throw new InvalidArgumentError("a task id is required");
    const stored = await this.#store.getTask(id);
    if (!stored) throw new NotFoundError(`task "${id}" not found`);
    const { state } = stored.value;
    if (!isFinal(state)) {
      throw new FailedPreconditionError(
        `task "${id}" is ${state}: only a finished task (done or dead) can be removed; ` +
          "cancel it first",
      );
    }
    await this.#store.deleteTasks([{ id, expectedRevision: stored.revision, state }]);
    this.#book.forgetFinished([id]);
    this.#log.info("task removed", { task: id });
  }

  /** Records how a task ended. Idempotent; a stale report is refused. */
  async report(report: TaskReport): Promise<void> {
    if (report.workerId === "" || report.taskId === "" || report.attempt < 1) {
      throw new InvalidArgumentError("worker_id, task_id and attempt (1 or more) are required");
    }
    const { outcome } = report;
    const event: TaskEvent = outcome.kind === "exited"
      ? {
        type: "exited",
        workerId: report.workerId,
        attempt: report.attempt,
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        stoppedFor: outcome.stoppedFor,
        output: report.output,
      }
      : outcome.kind === "not_started"
      ? {
        type: "not_started",
        workerId: report.workerId,
        attempt: report.attempt,
        reason: outcome.reason,
      }
      : {
        type: outcome.kind,
        workerId: report.workerId,
        attempt: report.attempt,
        error: outcome.error,
        output: report.output,
      };
    const ending = this.#book.peek(report.taskId);
    // An attempt given back is placed again itself: its room is not lent out meanwhile.
    const frees = ending?.workerId === report.workerId && ending.attempt === report.attempt &&
      outcome.kind !== "not_started";
    if (frees) {
      this.#reserved.add(report.workerId, ending, -1);
      this.#drainQueue();
    }
    let result;
    try {
      result = await this.#apply(report.taskId, event);
    } finally {
      if (frees) this.#reserved.add(report.workerId, ending, 1);
    }
    if (!result.ok) throw new FailedPreconditionError(result.refusal.message);
    // A task given back unstarted did not finish; #apply logs that it is placed again.
    if (result.changed && (outcome.kind !== "not_started" || result.task.state !== "pending")) {
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

  /** Places a new task in memory, taking its share of the candidate's room. */
  #placeNew(task: TaskRecord, candidates: CandidatePool): TaskRecord {
    const placement = this.#placer.place(candidates, task);
    if (!placement.ok) {
      this.#diagnoses.set(task.id, placement.reason);
      return { ...task, placement: placement.reason };
    }
    const result = transition(
      task,
      { type: "assign", workerId: placement.workerId },
      this.#clock.now(),
    );
    // A new task is pending and unplaced, so it can always be assigned.
    if (!result.ok) throw new Error(`placing a new task: ${result.refusal.message}`);
    candidates.takeRoom(placement.workerId, task);
    this.#reserved.add(placement.workerId, task, 1);
    return result.task;
  }

  /**
   * Workers as placement sees them, with what their unfinished tasks take. The pool is kept
   * between rounds and rebuilt only when a worker changes; tasks changing only update their
   * workers' usage. (Building it for thousands of workers took longer than placing a batch.)
   */
  #candidates(): CandidatePool {
    const changed = this.#book.takeUsageChanges();
    for (const id of this.#reserved.takeChanges()) changed.add(id);
    const usageOf = (id: string) => plus(this.#book.usageOf(id), this.#reserved.of(id));
    if (this.#pool?.version === this.#workers.version) {
      this.#pool.pool.settle(changed, usageOf);
      return this.#pool.pool;
    }
    const pool = new CandidatePool(
      this.#workers.records().map((worker) =>
        candidateOf(worker, this.#workers.session(worker.id)?.open ?? false, usageOf(worker.id))
      ),
    );
    this.#pool = { pool, version: this.#workers.version };
    return pool;
  }

  /**
   * Places waiting tasks, higher priority first, then oldest; a task that does not fit does
   * not hold up smaller ones behind it. The assignments' writes are not awaited: a call
   * meanwhile skips the tasks being assigned (#placing), and their room stays taken
   * (#reserved), so placing never queues up behind the store.
   */
  #drainQueue(): void {
    const now = this.#clock.now();
    if (this.#book.waitingCount === 0 || this.#stopping) return;
    const candidates = this.#candidates();
    const assigning: Promise<void>[] = [];
    this.#queueStoppedFull = false;
    for (const task of this.#book.queue()) {
      if ((task.retryAt ?? 0) > now || this.#placing.has(task.id)) continue;
      // With every slot taken nothing more can be placed: the rest of the queue is not tried.
      // Tasks not reached keep the diagnosis they had (see #diagnosisOf).
      if (candidates.openCount > 0 && candidates.freeSlots === 0) {
        this.#queueStoppedFull = true;
        break;
      }
      const placement = this.#placer.place(candidates, task);
      if (!placement.ok) {
        this.#diagnoses.set(task.id, placement.reason);
        continue;
      }
      // Room is taken at once so the next placement sees it; the writes go out together.
      candidates.takeRoom(placement.workerId, task);
      this.#reserved.add(placement.workerId, task, 1);
      this.#placing.add(task.id);
      assigning.push(
        this.#apply(task.id, { type: "assign", workerId: placement.workerId }).then((result) => {
          if (result.ok && result.changed) this.#send(result.task);
        }).finally(() => {
          this.#reserved.add(placement.workerId, task, -1);
          this.#placing.delete(task.id);
        }),
      );
    }
    if (assigning.length === 0) return;
    void Promise.allSettled(assigning).then((settled) => {
      const failed = settled.find((r) => r.status === "rejected");
      if (failed) {
        this.#log.warn("cannot place waiting tasks yet", {
          cause: (failed as PromiseRejectedResult).reason,
        });
      }
    });
  }

  /**
   * Moves tasks that have waited in a worker's queue for a ping interval to slots that are
   * idle elsewhere, with nothing waiting at the manager to take them: at the end of a burst a
   * task queued behind a long one would otherwise wait for it. The worker gives the task back
   * (not_started) if it has not started it meanwhile, and placing it again prefers an idle
   * slot. Also asks back what a draining worker holds, and what a task of higher priority
   * waits for.
   */
  #rebalanceQueues(now: number): void {
    for (const [id, attempt] of this.#unqueueAsked) {
      const task = this.#book.peek(id);
      if (!task || task.attempt !== attempt || !isAssigned(task)) this.#unqueueAsked.delete(id);
    }
    if (this.#inWorkerQueue.size === 0) return;
    const candidates = this.#candidates();
    const queuedOn = this.#queuedOnWorkers();
    this.#unqueueFromDraining(candidates, queuedOn);
    this.#yieldToPriority(candidates, queuedOn, now);
    if (candidates.idleSlots === 0) return;
    const waitedSince = now - this.#options.pingIntervalMs;
    for (const [workerId, queued] of queuedOn) {
      for (const task of queued) {
        if ((task.assignedAt ?? now) > waitedSince) continue;
        if (this.#unqueueAsked.get(task.id) === task.attempt) continue;
        const target = this.#placer.idleSlotFor(candidates, task);
        if (target === undefined || target === workerId) continue;
        if (!this.#askBack(task, MOVED_TO_IDLE_SLOT)) continue;
        // The room is the target's until the pool next settles, so that one idle slot draws
        // one task, not one from every queue.
        candidates.takeRoom(target, task);
        this.#log.info("moving a queued task to a slot free elsewhere", {
          task: task.id,
          attempt: task.attempt,
          from: workerId,
          idle_slot_on: target,
        });
      }
    }
  }

  /**
   * Asks the task's worker to give back the attempt if it still waits in its queue (Unqueue),
   * once per attempt; false when the worker is not connected.
   */
  #askBack(task: TaskRecord, reason: string): boolean {
    const session = this.#workers.session(task.workerId!);
    if (!session?.open) return false;
    this.#unqueueAsked.set(task.id, task.attempt);
    session.send({
      msg: { case: "unqueue", value: { taskId: task.id, attempt: task.attempt, reason } },
    });
    return true;
  }

  /** The tasks waiting in each worker's queue (as their workers said), newest first. */
  #queuedOnWorkers(): Map<string, TaskRecord[]> {
    const queuedOn = new Map<string, TaskRecord[]>();
    for (const [id, attempt] of this.#inWorkerQueue) {
      const task = this.#book.peek(id);
      if (!task || task.attempt !== attempt || !task.workerId) continue;
      const tasks = queuedOn.get(task.workerId);
      if (tasks) tasks.push(task);
      else queuedOn.set(task.workerId, [task]);
    }
    for (const tasks of queuedOn.values()) {
      // Ids of one batch grow in the order its tasks were sent (of one priority).
      tasks.sort((a, b) =>
        (b.assignedAt ?? 0) - (a.assignedAt ?? 0) || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0)
      );
    }
    return queuedOn;
  }

  /** Whether the task is scheduled and still waits in its worker's queue, not started. */
  waitsInWorkerQueue(task: TaskRecord): boolean {
    return !isFinal(task.state) && this.#inWorkerQueue.get(task.id) === task.attempt;
  }

  /**
   * A task of higher priority submitted when every slot and queue it fits is taken would wait
   * at the manager while tasks of lower priority wait in the workers' queues. The task of
   * lowest priority queued on a worker it could run on, taking at least the room it needs, is
   * asked back (Unqueue); placing by priority gives the room to the waiting task, and the
   * worker starts it first of its queue. One task asked back per waiting task, each once.
   */
  #yieldToPriority(
    candidates: CandidatePool,
    queuedOn: Map<string, TaskRecord[]>,
    now: number,
  ): void {
    // Room already asked back is coming (a give-back takes milliseconds): as many waiting tasks
    // get it. An attempt not given back by the tick after next had started; its room is not.
    for (const [id, at] of this.#overtakenAt) {
      if (at <= now - 2 * this.#options.pingIntervalMs || !this.#unqueueAsked.has(id)) {
        this.#overtakenAt.delete(id);
      }
    }
    if (this.#book.waitingCount === 0) return;
    let coming = this.#overtakenAt.size;
    // Lowest priority first (of equal ones, each worker's newest first): the first that suits
    // a waiting task is the one to ask back.
    let victims: TaskRecord[] | undefined;
    let checks = 0;
    for (const task of this.#book.queue()) {
      if ((task.retryAt ?? 0) > now || this.#placing.has(task.id)) continue;
      // Bounds the work of one tick when many wait that no queued task suits.
      if (++checks > MAX_OVERTAKE_CHECKS) return;
      victims ??= [...queuedOn.values()].flat()
        .filter((q) => this.#unqueueAsked.get(q.id) !== q.attempt)
        .sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0));
      const priority = task.priority ?? 0;
      // The queue is in priority order: no later task outranks anything queued.
      if (victims.length === 0 || priority <= (victims[0].priority ?? 0)) return;
      if (coming > 0) {
        coming--;
        continue;
      }
      const at = victims.findIndex((q) =>
        (q.priority ?? 0) < priority && (q.cpu ?? 0) >= (task.cpu ?? 0) &&
        (q.memoryBytes ?? 0) >= (task.memoryBytes ?? 0) &&
        couldRunOn(candidates.get(q.workerId!)!, task)
      );
      const victim = at < 0 ? undefined : victims.splice(at, 1)[0];
      if (!victim || !this.#askBack(victim, OVERTAKEN_UNQUEUED)) continue;
      this.#overtakenAt.set(victim.id, now);
      this.#log.info("a task of higher priority waits; asking back a queued one", {
        task: victim.id,
        attempt: victim.attempt,
        priority: victim.priority ?? 0,
        from: victim.workerId,
        waiting: task.id,
        waiting_priority: priority,
      });
    }
  }

  /**
   * A draining worker starts nothing new but what waits in its queue, and a drain's deadline
   * would cancel that: each task waiting in its queue that another worker in service could run
   * is asked back (Unqueue).
   */
  #unqueueFromDraining(candidates: CandidatePool, queuedOn: Map<string, TaskRecord[]>): void {
    for (const [workerId, queued] of queuedOn) {
      if (!candidates.get(workerId)?.draining) continue;
      let asked = 0;
      for (const task of queued) {
        if (this.#unqueueAsked.get(task.id) === task.attempt) continue;
        if (!fitsElsewhere(candidates, task, workerId)) continue;
        if (this.#askBack(task, DRAINING_UNQUEUED)) asked++;
      }
      if (asked > 0) {
        this.#log.info("giving back the tasks waiting in a draining worker's queue", {
          worker: workerId,
          tasks: asked,
        });
      }
    }
  }

  #withDiagnosis(task: TaskRecord): TaskRecord {
    if (task.state !== "pending" || isAssigned(task)) return task;
    const diagnosis = this.#diagnosisOf(task);
    return diagnosis === undefined ? task : { ...task, placement: diagnosis };
  }

  /** Why a waiting task is not placed yet, as of the last run of the queue that reached it. */
  #diagnosisOf(task: TaskRecord): string | undefined {
    const own = this.#diagnoses.get(task.id);
    if (own !== undefined || !this.#queueStoppedFull) return own;
    // A task still in its retry backoff is not tried, full cluster or not.
    return (task.retryAt ?? 0) > this.#clock.now() ? undefined : NO_FREE_SLOT;
  }

  /** A waiting task that is still unplaced after its schedule timeout is dead, saying why. */
  #startScheduleTimer(task: TaskRecord, now: number): void {
    const timeoutMs = task.scheduleTimeoutMs ?? this.#options.scheduleTimeoutMs ?? 300_000;
    const deadline = waitingSince(task) + timeoutMs;
    this.#setTimer(this.#scheduleTimers, task.id, deadline - now, async () => {
      const why = this.#diagnosisOf(this.#book.peek(task.id) ?? task) ?? "no worker fits";
      const result = await this.#apply(task.id, {
        type: "unplaceable",
        reason: `not placed within ${formatDuration(timeoutMs)}: ${why}`,
      }).catch((e) => {
        this.#log.warn("cannot store a schedule timeout yet", { task: task.id, cause: e });
        this.#startScheduleTimer(task, deadline - timeoutMs + this.#options.ackTimeoutMs);
        return undefined;
      });
      if (result?.ok && result.changed) {
        this.#log.warn("task not placed in time", {
          task: task.id,
          reason: result.task.deadReason,
        });
      }
    });
  }

  #startDrainTimer(worker: WorkerRecord): void {
    const now = this.#clock.now();
    this.#setTimer(this.#drainTimers, worker.id, (worker.drainDeadline ?? now) - now, async () => {
      const left = this.#book.active().filter((t) => t.workerId === worker.id).map((t) => t.id);
      if (left.length === 0) return;
      this.#log.info("drain deadline passed; cancelling what is left", {
        worker: worker.id,
        tasks: left.length,
      });
      await this.cancel(left).catch((e) =>
        this.#log.warn("cannot cancel a drained worker's tasks", { worker: worker.id, cause: e })
      );
    });
  }

  /** Runs `fn` once `ms` have passed, unless the key is cleared or set again first. */
  #setTimer(
    timers: DeadlineTimers<string>,
    key: string,
    ms: number,
    fn: () => Promise<void> | void,
  ): void {
    timers.set(key, this.#clock.now() + Math.max(0, ms), () => void fn());
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
    this.#ackDeadlines.set(task.id, deadline, async () => {
      const unstored = this.#unstoredAcks.get(task.id);
      if (this.#workers.sessions().length === 0 || unstored?.attempt === attempt) {
        // With every worker silent the fault is likely the manager's: wait for one to speak.
        // An acknowledgement that arrived but is not stored yet is not a missing one.
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
    });
  }

  /** A task waiting to be retried joins the queue when its backoff has passed. */
  #startRetryTimer(task: TaskRecord, now = this.#clock.now()): void {
    this.#setTimer(
      this.#retryTimers,
      task.id,
      (task.retryAt ?? now) - now,
      () => this.#drainQueue(),
    );
  }

  async #apply(taskId: string, event: TaskEvent, options?: ApplyOptions) {
    const before = this.#book.peek(taskId);
    const result = await this.#book.apply(taskId, event, this.#clock.now(), options);
    if (!result.ok || !result.changed) return result;
    const task = result.task;
    if (task.state !== "pending" || !isAssigned(task)) this.#ackDeadlines.clear(taskId);
    const queued = this.#inWorkerQueue.get(taskId);
    if (
      queued !== undefined &&
      (queued !== task.attempt || !isAssigned(task) || isFinal(task.state))
    ) {
      this.#inWorkerQueue.delete(taskId);
    }
    if (task.state !== "pending" || isAssigned(task)) {
      this.#scheduleTimers.clear(taskId);
      this.#diagnoses.delete(taskId);
    }
    if (isFinal(task.state)) this.#retryTimers.clear(taskId);
    if (task.state === "pending" && !isAssigned(task) && task.retryAt !== undefined) {
      this.#log.info("task will be retried", { task: taskId, at: new Date(task.retryAt) });
      this.#startRetryTimer(task);
      this.#startScheduleTimer(task, this.#clock.now());
    } else if (event.type === "not_started" && task.state === "pending") {
      this.#log.info("task given back unstarted by its worker; placing it again", {
        task: taskId,
        worker: event.workerId,
        reason: event.reason,
      });
      this.#startScheduleTimer(task, this.#clock.now());
    }
    // Room freed on a worker lets waiting tasks in.
    if (before && isAssigned(before) && (isFinal(task.state) || !isAssigned(task))) {
      this.#drainQueue();
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

  /**
   * The round of the next slice of sessions (one ping message for all, so it is encoded
   * once): each sends what it holds, and is pinged unless messages went both ways since its
   * last round. Held messages of other slices go once they have waited MAX_HOLD_MS. Once per
   * ping interval, after its slice's round, sweeps for silence.
   */
  #ping(): void {
    // Slice 0 comes last in each round, at a whole ping interval, when the first session of
    // all is pinged: as it was when every session was pinged at once.
    const slice = this.#pingSlice = (this.#pingSlice + 1) % PING_SLICES;
    if (slice === 1 % PING_SLICES) this.#pingSeq++;
    const ping: Outgoing = { msg: { case: "ping", value: { seq: this.#pingSeq } } };
    const quietPing: Outgoing = {
      msg: { case: "ping", value: { seq: this.#pingSeq, noPong: true } },
    };
    const now = this.#clock.now();
    const heldBefore = now - MAX_HOLD_MS;
    // A Pong is asked for whenever, without one, the worker could go unheard for half of
    // silence_timeout by its next round: a worker that stalls for the other half is not taken
    // for silent. At the default timings an idle worker then answers every other ping, which
    // saves the manager a read per worker and round.
    const heardLately = now + this.#options.pingIntervalMs - this.#options.silenceTimeoutMs / 2;
    // Skipping a round stretches the longest quiet spell either way to two ping intervals:
    // only when silence_timeout leaves room for that (the worker allows three).
    const maySkip = this.#options.silenceTimeoutMs > 3 * this.#options.pingIntervalMs;
    this.#workers.forEachSession((session) => {
      if (session.pingPhase !== slice) {
        if (session.heldCount > 0 && session.heldSince <= heldBefore) session.sendHeld();
        return;
      }
      // What is held goes now: alone when the ping is skipped, else with the ping.
      if (maySkip && session.nextRound(session.heldCount > 0)) session.sendHeld();
      else session.send(session.lastSeenAt > heardLately ? quietPing : ping);
    });
    if (slice === 0) void this.#tick();
  }

  async #tick(): Promise<void> {
    const now = this.#clock.now();
    try {
      const silent = await this.#workers.sweep(now, this.#options.silenceTimeoutMs);
      for (const session of silent) {
        await this.closeSession(
          session,
          `silent for more than ${formatDuration(this.#options.silenceTimeoutMs)}`,
          true,
        );
      }
      for (const [taskId, { session, attempt }] of [...this.#unstoredAcks]) {
        await this.acknowledge(session, taskId, attempt);
      }
      await this.#giveUpLost(now);
      this.#drainQueue();
      this.#rebalanceQueues(now);
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

/**
 * The first of the spec's texts (command, parameters, cwd, then each env key and value) with a
 * NUL byte in it. Checked in place: arrays of them were a few percent of what the manager
 * allocated while taking thousands of tasks a second.
 */
function textWithNul(spec: TaskSpec): string | undefined {
  if (spec.cmd.includes("\0")) return spec.cmd;
  for (const param of spec.params) if (param.includes("\0")) return param;
  if (spec.cwd?.includes("\0")) return spec.cwd;
  for (const key in spec.env) {
    if (key.includes("\0")) return key;
    if (spec.env[key].includes("\0")) return spec.env[key];
  }
  return undefined;
}

/** What is wrong with a spec, in plain words naming the bad value; undefined when nothing. */
function specProblem(spec: TaskSpec): string | undefined {
  if (spec.cmd.trim() === "") return "cmd is empty";
  const withNul = textWithNul(spec);
  if (withNul !== undefined) {
    return `${JSON.stringify(withNul)} contains a NUL byte, which no command can take`;
  }
  for (const key in spec.env) {
    if (key === "" || key.includes("=")) {
      return `env key ${JSON.stringify(key)} is not a variable name (empty, or contains "=")`;
    }
  }
  for (const label of spec.labels ?? []) {
    const problem = labelKeyProblem(label.key) ??
      (label.value ? labelValueProblem(label.key, label.value) : undefined);
    if (problem) return problem;
  }
  if (spec.cpu !== undefined && !(spec.cpu >= 0)) return `cpu ${spec.cpu} is negative`;
  if (spec.memoryBytes !== undefined && !(spec.memoryBytes >= 0)) {
    return `memory ${spec.memoryBytes} bytes is negative`;
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
      ["schedule_timeout", spec.scheduleTimeoutMs],
    ]
  ) {
    if (ms !== undefined && (!Number.isFinite(ms as number) || (ms as number) < 0)) {
      return `${name} ${ms}ms is negative`;
    }
  }
  return undefined;
}

function plus(a: Readonly<Capacity>, b: Readonly<Capacity>): Capacity {
  return {
    cpu: a.cpu + b.cpu,
    memoryBytes: a.memoryBytes + b.memoryBytes,
    slots: a.slots + b.slots,
  };
}

/** The last `count` lines of `text` (all of it for 0). */
export function lastLines(text: string, count: number): string {
  if (count <= 0) return text;
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  const lines = body.split("\n");
  if (lines.length <= count) return text;
  return lines.slice(-count).join("\n") + (text.endsWith("\n") ? "\n" : "");
}
