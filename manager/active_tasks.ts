/**
 * The book's active tasks (pending, scheduled) by id, with two indexes kept as tasks change:
 * the tasks waiting to be placed, and what each worker's tasks take of it. Placement asks
 * both after every finished task and every batch; scanning thousands of active tasks each
 * time (and copying them) was a large share of a busy manager's work.
 */
import type { Versioned } from "../shared/store/store.ts";
import { type Capacity, isFinal, type TaskRecord } from "../shared/task.ts";
import { isAssigned } from "../shared/task_machine.ts";
import { UsageLedger } from "./usage_ledger.ts";

export class ActiveTasks {
  readonly #entries = new Map<string, Versioned<TaskRecord>>();
  readonly #waiting = new Set<string>();
  /**
   * The waiting ids in queue order, sorted when the queue is read after it grew. Ids that have
   * left are skipped when read and dropped when it is next sorted: a long queue is not sorted
   * again after every task placed from it.
   */
  #order: string[] | undefined;
  /** Where the order's first waiting id is: those before it have all left. */
  #orderStart = 0;
  readonly #usage = new UsageLedger();

  get size(): number {
    return this.#entries.size;
  }

  get(id: string): Versioned<TaskRecord> | undefined {
    return this.#entries.get(id);
  }

  values(): IterableIterator<Versioned<TaskRecord>> {
    return this.#entries.values();
  }

  set(id: string, entry: Versioned<TaskRecord>): void {
    const wasWaiting = this.#waiting.has(id);
    this.#unindex(this.#entries.get(id)?.value);
    this.#entries.set(id, entry);
    this.#index(entry.value);
    if (!wasWaiting && this.#waiting.has(id)) this.#order = undefined;
  }

  delete(id: string): void {
    this.#unindex(this.#entries.get(id)?.value);
    this.#entries.delete(id);
  }

  /**
   * Pending tasks that no worker holds, in the order they are placed: higher priority first,
   * then older, then by id. Read it without awaiting in between: changes meanwhile may or may
   * not be seen.
   */
  *queue(): Generator<TaskRecord> {
    if (!this.#order || this.#order.length - this.#orderStart > 2 * this.#waiting.size + 1024) {
      this.#order = [...this.#waiting].sort((a, b) =>
        compareQueueOrder(this.#entries.get(a)!.value, this.#entries.get(b)!.value)
      );
      this.#orderStart = 0;
    }
    const order = this.#order;
    // Tasks leave mostly from the front, as they are placed in order.
    while (this.#orderStart < order.length && !this.#waiting.has(order[this.#orderStart])) {
      this.#orderStart++;
    }
    for (let i = this.#orderStart; i < order.length; i++) {
      if (this.#waiting.has(order[i])) yield this.#entries.get(order[i])!.value;
    }
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

/** Queue order: higher priority first, then older, then by id. */
export function compareQueueOrder(a: TaskRecord, b: TaskRecord): number {
  return (b.priority ?? 0) - (a.priority ?? 0) || a.createdAt - b.createdAt ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Whether a task's attempt takes room on its worker (as placement counts it). */
function holdsRoom(task: TaskRecord): boolean {
  return isAssigned(task) && !isFinal(task.state);
}
