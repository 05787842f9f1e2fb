/**
 * The manager's book of tasks: active tasks (pending, scheduled) live in memory with their
 * store revision; every change goes through the state machine and is written with
 * compare-and-swap before the book believes it. Finished tasks live in the store; the most
 * recently finished are also kept here for a while, because what follows a task's end is
 * usually about it (its late acknowledgement, a repeated report, a client polling for the
 * result), and reading each back from the store costs a round trip. Only this manager writes
 * tasks, and a finished task does not change, so the copy stays true.
 */
import {
  ConflictError,
  type Store,
  type TaskUpdate,
  type Versioned,
} from "../shared/store/store.ts";
import { type Capacity, isFinal, type TaskRecord, type TaskState } from "../shared/task.ts";
import { type TaskEvent, transition, type TransitionResult } from "../shared/task_machine.ts";
import { KeyedLock } from "../shared/keyed_lock.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { NotFoundError } from "./errors.ts";
import { ActiveTasks } from "./active_tasks.ts";

/** At most this many task updates in one store write (fewer if the store says so). */
const MAX_GROUP = 256;

/** Store writes under way at once, when updates come faster than one write takes. */
const MAX_WRITES = 4;

/**
 * Under load, how long a group that is not full waits for more updates before it is written
 * (see #flush), and the size of the last write that says the manager is under load.
 */
const LINGER_MS = 3;
const LOADED_GROUP = 4;

/** Recently finished tasks kept in memory (the oldest go first). */
const RECENTLY_FINISHED = 4096;

/** How long a deferred change may wait for a later one to carry it. */
export const DEFAULT_DEFER_MS = 250;

export interface TaskBookOptions {
  /** Timers for deferred writes; injected in tests. */
  clock?: Clock;
  /** How long a deferred change waits before it is written on its own. */
  deferMs?: number;
  /** Says when deferred changes cannot be written yet (they are tried again). */
  onDeferredWriteError?: (error: unknown) => void;
}

export interface ApplyOptions {
  /**
   * Keep the change in memory and write it within deferMs, or sooner with the task's next
   * change. For a change the store may lag behind without harm: an acknowledgement, which a
   * restarted manager learns again from the worker's Hello. A short task's result then
   * carries its acknowledgement in the same write, one store write per task fewer.
   */
  defer?: boolean;
}

interface PendingWrite {
  update: TaskUpdate;
  resolve: (written: Versioned<TaskRecord>) => void;
  reject: (error: unknown) => void;
}

export class TaskBook {
  readonly #store: Store;
  readonly #active = new ActiveTasks();
  readonly #finished = new Map<string, Versioned<TaskRecord>>();
  readonly #lock = new KeyedLock();
  readonly #waiting: PendingWrite[] = [];
  readonly #groupSize: number;
  #writes = 0;
  #flushQueued = false;
  /** Updates in the last group written (when it started). */
  #lastGroupSize = 0;
  #lingerTimer: unknown;
  /**
   * Active tasks whose entry in #active is ahead of the store (its revision is the stored
   * one), with the state the store has for them.
   */
  readonly #deferred = new Map<string, TaskState>();
  #deferTimer: unknown;
  readonly #clock: Clock;
  readonly #deferMs: number;
  readonly #onDeferredWriteError: (error: unknown) => void;
  /** What untilFinal's callers wait on, by task id. */
  readonly #finalWaiters = new Map<string, Set<() => void>>();

  constructor(store: Store, options: TaskBookOptions = {}) {
    this.#store = store;
    this.#groupSize = Math.min(MAX_GROUP, store.updatesPerWrite ?? MAX_GROUP);
    this.#clock = options.clock ?? systemClock;
    this.#deferMs = options.deferMs ?? DEFAULT_DEFER_MS;
    this.#onDeferredWriteError = options.onDeferredWriteError ?? (() => {});
  }

  /** Changes kept in memory that the store does not have yet. */
  get deferred(): number {
    return this.#deferred.size;
  }

  /** Reads the active tasks back from the store (at start-up). */
  async load(): Promise<TaskRecord[]> {
    const active = await this.#store.listActiveTasks();
    for (const entry of active) this.#active.set(entry.value.id, entry);
    return active.map((e) => e.value);
  }

  /** The active task with this id, if there is one; without a copy of the whole book. */
  peek(id: string): TaskRecord | undefined {
    return this.#active.get(id)?.value;
  }

  active(): TaskRecord[] {
    return [...this.#active.values()].map((e) => e.value);
  }

  /** Pending tasks no worker holds, in queue order (see ActiveTasks.queue). */
  queue(): Generator<TaskRecord> {
    return this.#active.queue();
  }

  get waitingCount(): number {
    return this.#active.waitingCount;
  }

  /** What a worker's unfinished attempts take of it, kept as tasks change. */
  usageOf(workerId: string): Readonly<Capacity> {
    return this.#active.usageOf(workerId);
  }

  /** The workers whose usage changed since this was last called (for one cache of it). */
  takeUsageChanges(): Set<string> {
    return this.#active.takeUsageChanges();
  }

  /** Forgets finished tasks removed from the store (see task_sweeper.ts). */
  forgetFinished(ids: Iterable<string>): void {
    for (const id of ids) this.#finished.delete(id);
  }

  /** How many unfinished tasks each worker holds. */
  countByWorker(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { value } of this.#active.values()) {
      if (value.workerId) counts.set(value.workerId, (counts.get(value.workerId) ?? 0) + 1);
    }
    return counts;
  }

  /** Stores new tasks, all or none. */
  async create(tasks: TaskRecord[]): Promise<void> {
    const stored = await this.#store.createTasks(tasks);
    for (const entry of stored) {
      if (!isFinal(entry.value.state)) this.#active.set(entry.value.id, entry);
    }
  }

  async get(id: string): Promise<TaskRecord> {
    const known = this.#active.get(id) ?? this.#finished.get(id);
    if (known) return known.value;
    const stored = await this.#store.getTask(id);
    if (!stored) throw new NotFoundError(`task "${id}" not found`);
    return stored.value;
  }

  /**
   * Applies an event to a task and stores the result. A refusal changes nothing; a write
   * that loses a race re-reads the task and tries the event once more (a deferred change of
   * the task is then lost with the stale copy).
   */
  apply(
    id: string,
    event: TaskEvent,
    now: number,
    options: ApplyOptions = {},
  ): Promise<TransitionResult> {
    return this.#lock.run(id, async () => {
      for (let tries = 0;; tries++) {
        const current = this.#active.get(id) ?? this.#finished.get(id) ??
          await this.#fetch(id);
        const result = transition(current.value, event, now);
        if (!result.ok || !result.changed) return result;
        if (options.defer && !isFinal(result.task.state)) {
          // The stored revision stays: the write that carries this change compares with it.
          this.#active.set(id, { value: result.task, revision: current.revision });
          if (!this.#deferred.has(id)) this.#deferred.set(id, current.value.state);
          this.#deferTimer ??= this.#clock.setTimeout(() => {
            this.#deferTimer = undefined;
            void this.writeDeferred();
          }, this.#deferMs);
          return result;
        }
        try {
          await this.#commit(id, result.task, current);
          return result;
        } catch (e) {
          if (!(e instanceof ConflictError) || tries > 0) throw e;
          this.#forget(id);
        }
      }
    });
  }

  /**
   * Writes the deferred changes now (they are due, or the manager is stopping). Those that
   * cannot be written stay deferred and are tried again later; resolves once each is tried.
   */
  async writeDeferred(): Promise<void> {
    this.#clock.clearTimeout(this.#deferTimer);
    this.#deferTimer = undefined;
    let failure: unknown;
    await Promise.all([...this.#deferred.keys()].map((id) =>
      this.#lock.run(id, async () => {
        const current = this.#active.get(id);
        if (!this.#deferred.has(id) || !current) return;
        try {
          await this.#commit(id, current.value, current);
        } catch (e) {
          if (e instanceof ConflictError) this.#forget(id);
          else failure ??= e;
        }
      })
    ));
    if (failure !== undefined) {
      this.#onDeferredWriteError(failure);
      this.#deferTimer ??= this.#clock.setTimeout(() => {
        this.#deferTimer = undefined;
        void this.writeDeferred();
      }, this.#deferMs);
    }
  }

  /**
   * Resolves once the task's end is stored, `waitMs` has passed, `signal` aborted or the
   * book is closed, whichever comes first; at once for a task not active here (ended, or
   * unknown). It says nothing about which: the caller reads the task again.
   */
  untilFinal(id: string, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.#active.get(id) || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.#finalWaiters.get(id);
      if (!waiters) this.#finalWaiters.set(id, waiters = new Set());
      const timer = this.#clock.setTimeout(() => done(), waitMs);
      const done = () => {
        this.#clock.clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        waiters.delete(done);
        if (waiters.size === 0 && this.#finalWaiters.get(id) === waiters) {
          this.#finalWaiters.delete(id);
        }
        resolve();
      };
      waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Stops the deferred-write timer (what is deferred stays unwritten) and answers every
   * untilFinal at once.
   */
  close(): void {
    this.#clock.clearTimeout(this.#deferTimer);
    this.#deferTimer = undefined;
    if (this.#lingerTimer !== undefined) {
      // Their callers wait on them: written now rather than left behind.
      this.#clock.clearTimeout(this.#lingerTimer);
      this.#lingerTimer = undefined;
      this.#flush();
    }
    for (const id of [...this.#finalWaiters.keys()]) this.#wakeFinalWaiters(id);
  }

  #wakeFinalWaiters(id: string): void {
    const waiters = this.#finalWaiters.get(id);
    if (!waiters) return;
    this.#finalWaiters.delete(id);
    for (const done of waiters) done();
  }

  /**
   * Writes the task's new value over `current`, the book's copy (group commit), and keeps
   * the stored copy.
   */
  async #commit(id: string, task: TaskRecord, current: Versioned<TaskRecord>): Promise<void> {
    const written = await this.#write({
      task,
      expectedRevision: current.revision,
      // What the store holds at that revision: the copy's state, unless the copy is ahead.
      previousState: this.#deferred.get(id) ?? current.value.state,
    });
    this.#deferred.delete(id);
    if (isFinal(written.value.state)) this.#rememberFinished(written);
    else this.#active.set(id, written);
  }

  /** Drops the book's copies of a task, which the store has changed behind them. */
  #forget(id: string): void {
    this.#active.delete(id);
    this.#finished.delete(id);
    this.#deferred.delete(id);
  }

  /**
   * Group commit: every update that arrives while a write is under way goes into the next
   * one, so a busy manager spends one round trip on many tasks while an idle one adds no
   * wait. Each caller resolves only once its update is stored. A group is at most what the
   * store writes in one atomic step; when a full group waits, it need not wait for the
   * write before (the per-task lock keeps each task's updates in order).
   */
  #write(update: TaskUpdate): Promise<Versioned<TaskRecord>> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ update, resolve, reject });
      // Not at once: updates made in the same turn (a task's end and the assignment of the
      // task that takes its room) then share a write even when the store is idle.
      if (this.#flushQueued) return;
      this.#flushQueued = true;
      queueMicrotask(() => {
        this.#flushQueued = false;
        this.#flush();
      });
    });
  }

  #flush(): void {
    if (this.#lingerTimer !== undefined) {
      // Only a full group cuts a linger short.
      if (this.#waiting.length < this.#groupSize) return;
      this.#clock.clearTimeout(this.#lingerTimer);
      this.#lingerTimer = undefined;
    } else if (
      this.#writes === 0 && this.#waiting.length > 0 &&
      this.#waiting.length < this.#groupSize && this.#lastGroupSize >= LOADED_GROUP
    ) {
      // The last write carried several updates, so more are on their way: each write costs
      // etcd a raft round and an fsync whatever it carries, and a few milliseconds let the
      // group grow to about twice the size (half the transactions in the throughput bench).
      // An idle manager's write goes at once; after the linger, the next group's size says
      // whether the load goes on.
      this.#lastGroupSize = 0;
      this.#lingerTimer = this.#clock.setTimeout(() => {
        this.#lingerTimer = undefined;
        this.#flush();
      }, LINGER_MS);
      return;
    }
    while (
      this.#waiting.length > 0 &&
      (this.#writes === 0 ||
        (this.#writes < MAX_WRITES && this.#waiting.length >= this.#groupSize))
    ) {
      void this.#writeGroup(this.#waiting.splice(0, this.#groupSize));
    }
  }

  async #writeGroup(group: PendingWrite[]): Promise<void> {
    this.#writes++;
    this.#lastGroupSize = group.length;
    try {
      const written = await this.#store.updateTasks(group.map((w) => w.update));
      group.forEach((w, i) => w.resolve(written[i]));
    } catch (e) {
      if (group.length > 1 && e instanceof ConflictError) {
        // One stale update refuses the whole group: write each alone, so only it fails.
        for (const w of group) {
          await this.#store.updateTasks([w.update]).then(([v]) => w.resolve(v), w.reject);
        }
      } else {
        for (const w of group) w.reject(e);
      }
    } finally {
      this.#writes--;
      this.#flush();
    }
  }

  #rememberFinished(entry: Versioned<TaskRecord>): void {
    const id = entry.value.id;
    this.#active.delete(id);
    this.#finished.delete(id);
    this.#finished.set(id, entry);
    if (this.#finished.size > RECENTLY_FINISHED) {
      this.#finished.delete(this.#finished.keys().next().value!);
    }
    this.#wakeFinalWaiters(id);
  }

  async #fetch(id: string): Promise<Versioned<TaskRecord>> {
    const stored = await this.#store.getTask(id);
    if (!stored) throw new NotFoundError(`task "${id}" not found`);
    if (!isFinal(stored.value.state)) this.#active.set(id, stored);
    return stored;
  }
}
