import type { TaskRecord, TaskState, WorkerRecord } from "../task.ts";
import {
  ConflictError,
  type ListTasksOptions,
  type Store,
  StoreUnavailableError,
  type TaskDeletion,
  type TaskUpdate,
  type Versioned,
} from "./store.ts";

/** A store kept in memory, for unit tests; it passes the same conformance suite as the others. */
export interface MemoryStore extends Store {
  /**
   * While true, every call (but close) rejects with StoreUnavailableError and changes
   * nothing: an outage of the store. Applies to this store object only.
   */
  unavailable: boolean;
  /** Makes the next call (but close) reject with `error` and change nothing. */
  failNext(error: Error): void;
  /** Opens another store on the same data, as a restarted manager would. */
  reopen(): MemoryStore;
}

/** What a store keeps: records as JSON text, so that no caller can hold a stored object. */
interface Data {
  revision: bigint;
  tasks: Map<string, Entry>;
  workers: Map<string, Entry>;
}

interface Entry {
  json: string;
  revision: bigint;
  /** Tasks only: the state, for the state filter. */
  state?: TaskState;
}

/**
 * Creates an empty in-memory store. It behaves as the SQLite and etcd stores do: one
 * revision counter for every write, one revision per batch, batches applied all or none,
 * lists in the byte order of ids (UTF-8, which is code point order), and records that go
 * in and come out as copies (through JSON, as the real stores encode them).
 */
export function createMemoryStore(): MemoryStore {
  return new InMemoryStore({ revision: 0n, tasks: new Map(), workers: new Map() });
}

class InMemoryStore implements MemoryStore {
  readonly #data: Data;
  #closed = false;
  #failure: Error | undefined;
  unavailable = false;

  constructor(data: Data) {
    this.#data = data;
  }

  failNext(error: Error): void {
    this.#failure = error;
  }

  reopen(): MemoryStore {
    return new InMemoryStore(this.#data);
  }

  createTasks(tasks: TaskRecord[]): Promise<Versioned<TaskRecord>[]> {
    return this.#call(() => {
      if (tasks.length === 0) return [];
      const seen = new Set<string>();
      for (const task of tasks) {
        if (seen.has(task.id)) {
          throw new ConflictError(`tasks/${task.id}`, `Task ${task.id} appears twice in the batch`);
        }
        if (this.#data.tasks.has(task.id)) {
          throw new ConflictError(`tasks/${task.id}`, `Task ${task.id} already exists`);
        }
        seen.add(task.id);
      }
      const revision = ++this.#data.revision;
      return tasks.map((task) => this.#putTask(task, revision));
    });
  }

  getTask(id: string): Promise<Versioned<TaskRecord> | undefined> {
    return this.#call(() => {
      const entry = this.#data.tasks.get(id);
      return entry && decode<TaskRecord>(entry);
    });
  }

  updateTasks(updates: TaskUpdate[]): Promise<Versioned<TaskRecord>[]> {
    return this.#call(() => {
      const seen = new Set<string>();
      for (const { task } of updates) {
        if (seen.has(task.id)) {
          throw new Error(`Task ${task.id} appears more than once in one update`);
        }
        seen.add(task.id);
      }
      for (const { task, expectedRevision } of updates) {
        this.#checkRevision(task.id, expectedRevision);
      }
      if (updates.length === 0) return [];
      const revision = ++this.#data.revision;
      return updates.map(({ task }) => this.#putTask(task, revision));
    });
  }

  deleteTasks(deletions: TaskDeletion[]): Promise<void> {
    return this.#call(() => {
      const seen = new Set<string>();
      for (const { id } of deletions) {
        if (seen.has(id)) throw new Error(`Task ${id} appears more than once in one deletion`);
        seen.add(id);
      }
      for (const { id, expectedRevision } of deletions) this.#checkRevision(id, expectedRevision);
      if (deletions.length === 0) return;
      // A delete is a write in etcd and takes a revision there, so it takes one here too. The
      // state filter reads each entry's own state, so there is no index entry to remove.
      ++this.#data.revision;
      for (const { id } of deletions) this.#data.tasks.delete(id);
    });
  }

  listTasks(options: ListTasksOptions = {}): Promise<Versioned<TaskRecord>[]> {
    const { state, afterId, limit } = options;
    return this.#call(() => {
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
        throw new RangeError(`The list limit must be a whole number >= 0, not ${limit}`);
      }
      const listed = sorted(this.#data.tasks).filter(([id, entry]) =>
        (state === undefined || entry.state === state) &&
        (afterId === undefined || compareIds(id, afterId) > 0)
      );
      return listed.slice(0, limit).map(([, entry]) => decode<TaskRecord>(entry));
    });
  }

  listActiveTasks(): Promise<Versioned<TaskRecord>[]> {
    return this.#call(() =>
      sorted(this.#data.tasks)
        .filter(([, entry]) => entry.state === "pending" || entry.state === "scheduled")
        .map(([, entry]) => decode<TaskRecord>(entry))
    );
  }

  putWorker(worker: WorkerRecord, expectedRevision: bigint): Promise<Versioned<WorkerRecord>> {
    return this.#call(() => {
      const current = this.#data.workers.get(worker.id);
      const key = `workers/${worker.id}`;
      if (expectedRevision === 0n) {
        if (current) throw new ConflictError(key, `Worker ${worker.id} already exists`);
      } else if (!current) {
        throw new ConflictError(key, `Worker ${worker.id} does not exist`);
      } else if (current.revision !== expectedRevision) {
        throw new ConflictError(
          key,
          `Worker ${worker.id} changed since revision ${expectedRevision} (now ${current.revision})`,
        );
      }
      const entry = { json: JSON.stringify(worker), revision: ++this.#data.revision };
      this.#data.workers.set(worker.id, entry);
      return decode<WorkerRecord>(entry);
    });
  }

  getWorker(id: string): Promise<Versioned<WorkerRecord> | undefined> {
    return this.#call(() => {
      const entry = this.#data.workers.get(id);
      return entry && decode<WorkerRecord>(entry);
    });
  }

  listWorkers(): Promise<Versioned<WorkerRecord>[]> {
    return this.#call(() =>
      sorted(this.#data.workers).map(([, entry]) => decode<WorkerRecord>(entry))
    );
  }

  deleteWorker(id: string, expectedRevision: bigint): Promise<void> {
    return this.#call(() => {
      const current = this.#data.workers.get(id);
      const key = `workers/${id}`;
      if (!current) throw new ConflictError(key, `Worker ${id} does not exist`);
      if (current.revision !== expectedRevision) {
        throw new ConflictError(
          key,
          `Worker ${id} changed since revision ${expectedRevision} (now ${current.revision})`,
        );
      }
      // A delete takes a revision in etcd, as in deleteTasks.
      ++this.#data.revision;
      this.#data.workers.delete(id);
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #checkRevision(id: string, expectedRevision: bigint): void {
    const current = this.#data.tasks.get(id);
    if (!current) {
      throw new ConflictError(`tasks/${id}`, `Task ${id} does not exist`);
    }
    if (current.revision !== expectedRevision) {
      throw new ConflictError(
        `tasks/${id}`,
        `Task ${id} changed since revision ${expectedRevision} (now ${current.revision})`,
      );
    }
  }

  #putTask(task: TaskRecord, revision: bigint): Versioned<TaskRecord> {
    const entry = { json: JSON.stringify(task), revision, state: task.state };
    this.#data.tasks.set(task.id, entry);
    return decode<TaskRecord>(entry);
  }

  /**
   * Runs fn as one call: it checks everything before it writes anything, so a throw leaves
   * the data as it was. Results are delivered asynchronously, as a real store's are.
   */
  #call<T>(fn: () => T): Promise<T> {
    try {
      if (this.#closed) throw new Error("The memory store is closed");
      if (this.unavailable) {
        throw new StoreUnavailableError("The memory store is unavailable (a simulated outage)");
      }
      const failure = this.#failure;
      if (failure) {
        this.#failure = undefined;
        throw failure;
      }
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

function decode<T>(entry: Entry): Versioned<T> {
  return { value: JSON.parse(entry.json) as T, revision: entry.revision };
}

/** Entries in id order. */
function sorted(map: Map<string, Entry>): [string, Entry][] {
  return [...map].sort(([a], [b]) => compareIds(a, b));
}

/**
 * Compares ids by code point, which is the byte order of their UTF-8 encoding (the order of
 * etcd keys and of SQLite's BINARY collation). Plain `<` compares UTF-16 units, which puts
 * characters above U+FFFF before U+E000..U+FFFF.
 */
export function compareIds(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++; // Both hold the same surrogate pair here.
  }
  return a.length - b.length;
}
