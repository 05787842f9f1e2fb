/**
 * The book's active tasks (pending, scheduled) by id, with two indexes kept as tasks change:
 * the tasks waiting to be placed, and what each worker's tasks take of it. Placement asks
 * both after every finished task and every batch; scanning thousands of active tasks each
 * time (and copying them) was a large share of a busy manager's work.
 */
import type { Versioned } from "../shared/store/store.ts";
import type { Capacity, TaskRecord } from "../shared/task.ts";
import { isAssigned } from "../shared/task_machine.ts";
import { UsageLedger } from "./usage_ledger.ts";

export class ActiveTasks {
  readonly #entries = new Map<string, Versioned<TaskRecord>>();
  readonly #waiting = new Set<string>();
  readonly #usage = new UsageLedger();

  get size(): number {
    return this.#entries.size;
  }

  get(id: string): Versioned<TaskRecord> | undefined {
    return this.#entries.get(id);
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  values(): IterableIterator<Versioned<TaskRecord>> {
    return this.#entries.values();
  }

  set(id: string, entry: Versioned<TaskRecord>): void {
    this.#unindex(this.#entries.get(id)?.value);
    this.#entries.set(id, entry);
    this.#index(entry.value);
  }

  delete(id: string): void {
    this.#unindex(this.#entries.get(id)?.value);
    this.#entries.delete(id);
  }

  /** Pending tasks that no worker holds: the queue, in no particular order. */
  waiting(): TaskRecord[] {
    return [...this.#waiting].map((id) => this.#entries.get(id)!.value);
  }

  get waitingCount(): number {
    return this.#waiting.size;
  }

  /** What the worker's unfinished attempts take of it. */
  usageOf(workerId: string): Readonly<Capacity> {
    return this.#usage.of(workerId);
  }

  /** The workers whose usage changed since this was last called. */
  takeUsageChanges(): Set<string> {
    return this.#usage.takeChanges();
  }

  #index(task: TaskRecord): void {
    if (task.state === "pending" && !isAssigned(task)) this.#waiting.add(task.id);
    if (holdsRoom(task)) this.#usage.add(task.workerId!, task, 1);
  }

  #unindex(task: TaskRecord | undefined): void {
    if (!task) return;
    this.#waiting.delete(task.id);
    if (holdsRoom(task)) this.#usage.add(task.workerId!, task, -1);
  }
}

/** Whether a task's attempt takes room on its worker (as placement counts it). */
function holdsRoom(task: TaskRecord): boolean {
  return task.workerId !== undefined && task.attempt >= 1 && task.state !== "done" &&
    task.state !== "dead";
}
