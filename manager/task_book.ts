/**
 * The manager's book of tasks: active tasks (pending, scheduled) live in memory with their
 * store revision; every change goes through the state machine and is written with
 * compare-and-swap before the book believes it. Finished tasks live only in the store.
 */
import { ConflictError, type Store, type Versioned } from "../shared/store/store.ts";
import { isFinal, type TaskRecord } from "../shared/task.ts";
import { type TaskEvent, transition, type TransitionResult } from "../shared/task_machine.ts";
import { KeyedLock } from "../shared/keyed_lock.ts";
import { NotFoundError } from "./errors.ts";

export class TaskBook {
  readonly #store: Store;
  readonly #active = new Map<string, Versioned<TaskRecord>>();
  readonly #lock = new KeyedLock();

  constructor(store: Store) {
    this.#store = store;
  }

  /** Reads the active tasks back from the store (at start-up). */
  async load(): Promise<TaskRecord[]> {
    const active = await this.#store.listActiveTasks();
    for (const entry of active) this.#active.set(entry.value.id, entry);
    return active.map((e) => e.value);
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
    const active = this.#active.get(id);
    if (active) return active.value;
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
        const current = this.#active.get(id) ?? await this.#fetch(id);
        const result = transition(current.value, event, now);
        if (!result.ok || !result.changed) return result;
        try {
          const [written] = await this.#store.updateTasks([
            { task: result.task, expectedRevision: current.revision },
          ]);
          if (isFinal(written.value.state)) this.#active.delete(id);
          else this.#active.set(id, written);
          return result;
        } catch (e) {
          if (!(e instanceof ConflictError) || tries > 0) throw e;
          this.#active.delete(id);
        }
      }
    });
  }

  async #fetch(id: string): Promise<Versioned<TaskRecord>> {
    const stored = await this.#store.getTask(id);
    if (!stored) throw new NotFoundError(`task "${id}" not found`);
    if (!isFinal(stored.value.state)) this.#active.set(id, stored);
    return stored;
  }
}
