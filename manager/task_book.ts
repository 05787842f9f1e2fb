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
import { isFinal, type TaskRecord } from "../shared/task.ts";
import { type TaskEvent, transition, type TransitionResult } from "../shared/task_machine.ts";
import { KeyedLock } from "../shared/keyed_lock.ts";
import { NotFoundError } from "./errors.ts";

/** At most this many task updates in one store write. */
const MAX_GROUP = 256;

/** Recently finished tasks kept in memory (the oldest go first). */
const RECENTLY_FINISHED = 4096;

interface PendingWrite {
  update: TaskUpdate;
  resolve: (written: Versioned<TaskRecord>) => void;
  reject: (error: unknown) => void;
}

export class TaskBook {
  readonly #store: Store;
  readonly #active = new Map<string, Versioned<TaskRecord>>();
  readonly #finished = new Map<string, Versioned<TaskRecord>>();
  readonly #lock = new KeyedLock();
  readonly #waiting: PendingWrite[] = [];
  #writing = false;

  constructor(store: Store) {
    this.#store = store;
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
   * that loses a race re-reads the task and tries the event once more.
   */
  apply(id: string, event: TaskEvent, now: number): Promise<TransitionResult> {
    return this.#lock.run(id, async () => {
      for (let tries = 0;; tries++) {
        const current = this.#active.get(id) ?? this.#finished.get(id) ??
          await this.#fetch(id);
        const result = transition(current.value, event, now);
        if (!result.ok || !result.changed) return result;
        try {
          const written = await this.#write({
            task: result.task,
            expectedRevision: current.revision,
          });
          if (isFinal(written.value.state)) this.#rememberFinished(written);
          else this.#active.set(id, written);
          return result;
        } catch (e) {
          if (!(e instanceof ConflictError) || tries > 0) throw e;
          this.#active.delete(id);
          this.#finished.delete(id);
        }
      }
    });
  }

  /**
   * Group commit: one write to the store at a time, and every update that arrives meanwhile
   * goes into the next one, so a busy manager spends one round trip on many tasks while an
   * idle one adds no wait. Each caller resolves only once its update is stored.
   */
  #write(update: TaskUpdate): Promise<Versioned<TaskRecord>> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ update, resolve, reject });
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#writing || this.#waiting.length === 0) return;
    this.#writing = true;
    const group = this.#waiting.splice(0, MAX_GROUP);
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
      this.#writing = false;
      void this.#flush();
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
  }

  async #fetch(id: string): Promise<Versioned<TaskRecord>> {
    const stored = await this.#store.getTask(id);
    if (!stored) throw new NotFoundError(`task "${id}" not found`);
    if (!isFinal(stored.value.state)) this.#active.set(id, stored);
    return stored;
  }
}
