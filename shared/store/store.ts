import type { TaskRecord, TaskState, WorkerRecord } from "../task.ts";

/** A record with the store revision it was read (or written) at. */
export interface Versioned<T> {
  value: T;
  revision: bigint;
}

/** A task update guarded by the revision the caller last saw. */
export interface TaskUpdate {
  task: TaskRecord;
  expectedRevision: bigint;
  /**
   * The state of the stored record that expectedRevision names, when the writer knows it: a
   * store that indexes tasks by state then touches only the index entries that change. The
   * revision check makes it safe: if the record is not that one, nothing is written.
   */
  previousState?: TaskState;
}

/** A finished task to remove, guarded by the revision the caller read it at. */
export interface TaskDeletion {
  id: string;
  expectedRevision: bigint;
  /** Its state (done or dead), so that a store indexing tasks by state removes that entry. */
  state: TaskState;
}

export interface ListTasksOptions {
  /** Only tasks in this state. */
  state?: TaskState;
  /** Only tasks whose id sorts strictly after this one (ids sort by creation time). */
  afterId?: string;
  /** At most this many tasks. */
  limit?: number;
}

/**
 * Where the manager keeps its state. Every write is a compare-and-swap: a write whose
 * expectation no longer holds throws {@link ConflictError} and changes nothing. Nothing
 * outside the implementations knows which store it has.
 */
export interface Store {
  /**
   * The most updates (each with its previous state given) that updateTasks writes in one
   * atomic step; a larger batch is cut into several, and undone when a later part fails.
   * A group commit sized to it spares the store that bookkeeping. Absent: no such limit.
   */
  readonly updatesPerWrite?: number;
  /** Stores new tasks, all or none; throws ConflictError when an id is taken. */
  createTasks(tasks: TaskRecord[]): Promise<Versioned<TaskRecord>[]>;
  getTask(id: string): Promise<Versioned<TaskRecord> | undefined>;
  /** Applies every update, or none when any revision is stale (ConflictError). */
  updateTasks(updates: TaskUpdate[]): Promise<Versioned<TaskRecord>[]>;
  /**
   * Removes finished tasks (their records and index entries), each only if its stored revision
   * is still the one given: all of them, or none when any has changed or is gone
   * (ConflictError). A batch larger than one atomic step of the store is cut into several; a
   * later part's conflict leaves the earlier parts deleted.
   */
  deleteTasks(deletions: TaskDeletion[]): Promise<void>;
  /** Tasks in id order (which is creation order). */
  listTasks(options?: ListTasksOptions): Promise<Versioned<TaskRecord>[]>;
  /** Every task that is pending or scheduled. */
  listActiveTasks(): Promise<Versioned<TaskRecord>[]>;
  /**
   * Writes a worker. expectedRevision 0n means "must not exist yet"; otherwise the stored
   * revision must match.
   */
  putWorker(worker: WorkerRecord, expectedRevision: bigint): Promise<Versioned<WorkerRecord>>;
  getWorker(id: string): Promise<Versioned<WorkerRecord> | undefined>;
  listWorkers(): Promise<Versioned<WorkerRecord>[]>;
  /**
   * Removes a worker's record, only if its stored revision is still `expectedRevision`:
   * ConflictError when it changed since, or is gone.
   */
  deleteWorker(id: string, expectedRevision: bigint): Promise<void>;
  /**
   * Present on a store that keeps every past version of its records until told to drop them
   * (etcd): without that, its database grows with every write until it is full.
   */
  readonly history?: StoreHistory;
  close(): Promise<void>;
}

/** The past versions a store keeps (see Store.history). */
export interface StoreHistory {
  /** The store's revision now: the number of its latest write, anyone's. */
  revision(): Promise<bigint>;
  /**
   * Drops the versions older than `revision` that are no longer a record's latest. Resolves
   * to false, having done nothing, when the history up to there is gone already (another
   * manager, or the store's own settings, dropped it).
   */
  compact(revision: bigint): Promise<boolean>;
}

/** A compare-and-swap lost its race: the record changed (or exists, or vanished) meanwhile. */
export class ConflictError extends Error {
  constructor(readonly key: string, message?: string) {
    super(message ?? `Conflicting write to ${key}`);
    this.name = "ConflictError";
  }
}

/**
 * The store refuses writes because it is full (etcd's space quota): it stays so until an
 * operator frees space, so retrying does not help.
 */
export class StoreFullError extends Error {
  override name = "StoreFullError";
}

/** The store cannot be reached or did not answer in time. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}
