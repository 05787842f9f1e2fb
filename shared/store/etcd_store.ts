import { Buffer } from "node:buffer";
import { createEtcdGateway } from "./etcd_gateway.ts";
import { createEtcdGrpc } from "./etcd_grpc.ts";
import {
  type Compare as ICompare,
  type EtcdKv,
  EtcdUnavailableError,
  isCompactedError,
  isNoSpaceError,
  type KeyValue as IKeyValue,
  type RequestOp as IRequestOp,
  type TxnResponse as ITxnResponse,
} from "./etcd_kv.ts";
import { TASK_STATES, type TaskRecord, type TaskState, type WorkerRecord } from "../task.ts";
import {
  ConflictError,
  type ListTasksOptions,
  type Store,
  StoreFullError,
  type StoreHistory,
  StoreUnavailableError,
  type TaskDeletion,
  type TaskUpdate,
  type Versioned,
} from "./store.ts";

export interface EtcdStoreOptions {
  /** etcd client URLs, such as `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Every key the store reads or writes starts with this. Default `/goschedule/`. */
  prefix?: string;
  /**
   * How long one store call may take, in milliseconds, before it fails with
   * StoreUnavailableError. Default 5000.
   */
  requestTimeoutMs?: number;
  /**
   * How to reach etcd: `grpc` (the default) or `json`, its JSON gateway, which costs etcd
   * about three times the CPU per task written.
   */
  protocol?: EtcdProtocol;
  /** The client to talk through, instead of one made for `protocol`; tests wrap one to inject races. */
  client?: EtcdKv;
}

export type EtcdProtocol = "grpc" | "json";
export const ETCD_PROTOCOLS: readonly EtcdProtocol[] = ["grpc", "json"];

/**
 * etcd's default `--max-txn-ops`. A request may hold this many compares and this many
 * operations per branch; nested transactions share the budget.
 */
const MAX_TXN_OPS = 128;
/** Below etcd's default `--max-request-bytes` (1.5 MiB), leaving room for framing. */
const MAX_TXN_BYTES = 1024 * 1024;
/** A create is two puts (the task and its state index entry). */
const CREATES_PER_TXN = MAX_TXN_OPS / 2;
/**
 * An update whose previous state is given is at most three operations: the record, and the
 * index entry it moves from one state to another. (Without it, every other state's entry is
 * deleted.) A batch is cut by the operations its updates really take.
 */
const UPDATES_PER_TXN = Math.floor(MAX_TXN_OPS / 3);
/** A deletion is two deletes (the task and its state index entry) and one compare. */
const DELETES_PER_TXN = MAX_TXN_OPS / 2;
/** An undo is one nested transaction of at most three operations. */
const UNDOS_PER_TXN = MAX_TXN_OPS / 2;

const EMPTY = Buffer.alloc(0);

/**
 * Opens a store on etcd and checks that etcd answers (StoreUnavailableError if not).
 *
 * Layout under the prefix: `tasks/<id>` and `workers/<id>` hold JSON records;
 * `index/<state>/<id>` (empty values) lists the tasks in each state, written in the same
 * transaction as the task, so a list by state never reads tasks in other states.
 * A record's revision is its etcd mod revision.
 */
export async function createEtcdStore(options: EtcdStoreOptions): Promise<Store> {
  if (options.endpoints.length === 0) {
    throw new Error("The etcd store needs at least one endpoint");
  }
  const store = new EtcdStore(
    options.endpoints,
    options.prefix ?? "/goschedule/",
    options.requestTimeoutMs ?? 5_000,
    options.client ??
      (options.protocol === "json" ? createEtcdGateway : createEtcdGrpc)(options.endpoints),
  );
  try {
    await store.ping();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

interface CallOptions {
  deadline: number;
}

/** What it takes to take back one task write of a batch that could not finish. */
interface Undo {
  id: string;
  /** The revision the batch wrote; the undo only applies if the task still has it. */
  revision: bigint;
  state: TaskState;
  /** The record before the batch (absent for a create). */
  previous?: { value: Buffer; state: TaskState };
}

class EtcdStore implements Store {
  readonly updatesPerWrite = UPDATES_PER_TXN;
  readonly #client: EtcdKv;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #where: string;
  #closed = false;

  constructor(endpoints: string[], prefix: string, timeoutMs: number, client: EtcdKv) {
    this.#prefix = prefix;
    this.#timeoutMs = timeoutMs;
    this.#where = endpoints.map((e) => e.replace(/^https?:\/\//, "")).join(", ");
    this.#client = client;
  }

  readonly history: StoreHistory = {
    revision: async () => {
      // Any read's header carries the revision; this one reads nothing.
      const response = await this.#run((call) =>
        this.#client.range({ key: this.#key(""), count_only: true }, call)
      );
      return BigInt(response.header.revision);
    },
    compact: (revision) =>
      this.#run(async (call) => {
        try {
          await this.#client.compact(revision.toString(), call);
          return true;
        } catch (error) {
          if (isCompactedError(error)) return false;
          throw error;
        }
      }),
  };

  async ping(): Promise<void> {
    await this.#run((call) =>
      this.#client.range({ key: this.#key("tasks/"), limit: 1, keys_only: true }, call)
    );
  }

  async createTasks(tasks: TaskRecord[]): Promise<Versioned<TaskRecord>[]> {
    if (tasks.length === 0) return [];
    const seen = new Set<string>();
    for (const task of tasks) {
      if (seen.has(task.id)) {
        throw new ConflictError(`tasks/${task.id}`, `Task ${task.id} appears twice in the batch`);
      }
      seen.add(task.id);
    }
    const encoded = tasks.map((task) => ({ task, value: encode(task) }));
    // etcd limits operations and bytes per transaction, so a big batch takes several. To keep
    // "all or none", when a later transaction fails the earlier ones are undone (each task
    // only if it still has the revision written here). Until then, readers can see the first
    // part of the batch. New tasks have new ids (the manager makes them), so taken ones are
    // not looked for first: that read cost a round trip and a range per task every time.
    const parts = split(encoded, CREATES_PER_TXN, (e) => e.value.length + 2 * e.task.id.length);
    // One deadline for every transaction of the batch; an undo gets a fresh one.
    const deadline = this.#deadline();
    const results: Versioned<TaskRecord>[] = [];
    const done: Undo[] = [];
    try {
      for (const part of parts) {
        const response = await this.#txn({
          compare: part.map(({ task }): ICompare => ({
            key: this.#taskKey(task.id),
            target: "Create",
            result: "Equal",
            create_revision: 0,
          })),
          success: part.flatMap(({ task, value }): IRequestOp[] => [
            { request_put: { key: this.#taskKey(task.id), value } },
            { request_put: { key: this.#indexKey(task.state, task.id), value: EMPTY } },
          ]),
          failure: part.map(({ task }) => ({
            request_range: { key: this.#taskKey(task.id), keys_only: true },
          })),
        }, deadline);
        if (!response.succeeded) {
          const taken = response.responses.findIndex((r) => r.response_range.kvs.length > 0);
          const id = part[Math.max(taken, 0)].task.id;
          throw new ConflictError(`tasks/${id}`, `Task ${id} already exists`);
        }
        const revision = BigInt(response.header.revision);
        for (const { task } of part) {
          results.push({ value: task, revision });
          done.push({ id: task.id, revision, state: task.state });
        }
      }
    } catch (error) {
      throw await this.#undo(done, error);
    }
    return results;
  }

  async getTask(id: string): Promise<Versioned<TaskRecord> | undefined> {
    const response = await this.#run((call) =>
      this.#client.range({ key: this.#taskKey(id) }, call)
    );
    const kv = response.kvs[0];
    return kv ? decode<TaskRecord>(kv) : undefined;
  }

  async updateTasks(updates: TaskUpdate[]): Promise<Versioned<TaskRecord>[]> {
    if (updates.length === 0) return [];
    const seen = new Set<string>();
    for (const { task, expectedRevision } of updates) {
      if (seen.has(task.id)) {
        throw new Error(`Task ${task.id} appears more than once in one update`);
      }
      seen.add(task.id);
      // A mod revision of 0 would match a missing key and create the task.
      if (expectedRevision <= 0n) {
        throw new ConflictError(`tasks/${task.id}`, `Task ${task.id} was never stored`);
      }
    }
    const encoded = updates.map((update) => {
      const value = encode(update.task);
      return { ...update, value, ops: this.#updateOps(update, value) };
    });
    // Same splitting and undo as createTasks. An undo puts back the previous record (which
    // the put hands back, prev_kv), so undone records keep their values but get a new
    // revision. Checking every revision first means that only a write racing this batch can
    // cause an undo; a stale revision in the batch itself writes nothing. One transaction
    // (the usual case) is all or nothing, needs no undo, and so asks for no previous values:
    // etcd would send each and the manager decode it.
    const parts = split(
      encoded,
      MAX_TXN_OPS,
      (e) => e.value.length + 5 * e.task.id.length,
      (e) => e.ops.length,
    );
    const undoable = parts.length > 1;
    const deadline = this.#deadline();
    if (parts.length > 1) {
      const current = await this.#currentRevisions(updates.map((u) => u.task.id), deadline);
      for (const { task, expectedRevision } of updates) {
        const conflict = updateConflict(task.id, expectedRevision, current.get(task.id));
        if (conflict) throw conflict;
      }
    }
    const results: Versioned<TaskRecord>[] = [];
    const done: Undo[] = [];
    try {
      for (const part of parts) {
        if (undoable) {
          // Each update's ops start with the put of its record, whose previous value an undo
          // puts back.
          for (const { ops } of part) ops[0].request_put!.prev_kv = true;
        }
        const response = await this.#txn({
          compare: part.map(({ task, expectedRevision }): ICompare => ({
            key: this.#taskKey(task.id),
            target: "Mod",
            result: "Equal",
            mod_revision: expectedRevision.toString(),
          })),
          success: part.flatMap((e) => e.ops),
          failure: part.map(({ task }) => ({
            request_range: { key: this.#taskKey(task.id), keys_only: true },
          })),
        }, deadline);
        if (!response.succeeded) {
          throw this.#revisionConflict(
            part.map(({ task, expectedRevision }) => ({ id: task.id, expectedRevision })),
            response,
            "update",
          );
        }
        const revision = BigInt(response.header.revision);
        let first = 0;
        for (const { task, ops } of part) {
          results.push({ value: task, revision });
          if (!undoable) continue;
          const prev = response.responses[first].response_put.prev_kv;
          first += ops.length;
          done.push({
            id: task.id,
            revision,
            state: task.state,
            previous: { value: prev.value, state: decode<TaskRecord>(prev).value.state },
          });
        }
      }
    } catch (error) {
      throw await this.#undo(done, error);
    }
    return results;
  }

  /**
   * A task update's operations: the record first (its previous value comes back for an undo),
   * then the state index. With the previous state known only the entries that change are
   * touched; without it every other state's entry is deleted (deleting a missing key is
   * allowed), which costs the store a delete per state.
   */
  #updateOps({ task, previousState }: TaskUpdate, value: Buffer): IRequestOp[] {
    const record: IRequestOp = { request_put: { key: this.#taskKey(task.id), value } };
    if (previousState === task.state) return [record];
    const index: IRequestOp = {
      request_put: { key: this.#indexKey(task.state, task.id), value: EMPTY },
    };
    const stale = previousState === undefined
      ? TASK_STATES.filter((s) => s !== task.state)
      : [previousState];
    return [
      record,
      index,
      ...stale.map((s): IRequestOp => ({
        request_delete_range: { key: this.#indexKey(s, task.id) },
      })),
    ];
  }

  async deleteTasks(deletions: TaskDeletion[]): Promise<void> {
    if (deletions.length === 0) return;
    const seen = new Set<string>();
    for (const { id, expectedRevision } of deletions) {
      if (seen.has(id)) {
        throw new Error(`Task ${id} appears more than once in one deletion`);
      }
      seen.add(id);
      // A mod revision of 0 would match a missing key, and "delete" a task that is not there.
      if (expectedRevision <= 0n) {
        throw new ConflictError(`tasks/${id}`, `Task ${id} was never stored`);
      }
    }
    // Split as createTasks splits, and every revision checked first as updateTasks does, so a
    // stale revision in the batch itself deletes nothing. Nothing is undone, unlike a create or
    // an update: putting a record back would give it a new revision, so it would not be the
    // record anyone read, and each deletion made was wanted and checked against its revision.
    // So when a write races a batch of several transactions, the parts before it stay deleted.
    const parts = split(deletions, DELETES_PER_TXN, (d) => 2 * d.id.length);
    const deadline = this.#deadline();
    if (parts.length > 1) {
      const current = await this.#currentRevisions(deletions.map((d) => d.id), deadline);
      for (const { id, expectedRevision } of deletions) {
        const conflict = updateConflict(id, expectedRevision, current.get(id));
        if (conflict) throw conflict;
      }
    }
    let deleted = 0;
    for (const part of parts) {
      const response = await this.#txn({
        compare: part.map(({ id, expectedRevision }): ICompare => ({
          key: this.#taskKey(id),
          target: "Mod",
          result: "Equal",
          mod_revision: expectedRevision.toString(),
        })),
        // `state` is the caller's, not read here. The compare makes that safe: it holds only
        // while the record is the very one the caller read, so the state it was read in is its
        // state now, and the index entry deleted is its only one; none is left behind.
        success: part.flatMap(({ id, state }): IRequestOp[] => [
          { request_delete_range: { key: this.#taskKey(id) } },
          { request_delete_range: { key: this.#indexKey(state, id) } },
        ]),
        failure: part.map(({ id }) => ({
          request_range: { key: this.#taskKey(id), keys_only: true },
        })),
      }, deadline);
      if (!response.succeeded) {
        const conflict = this.#revisionConflict(part, response, "deletion");
        if (deleted === 0) throw conflict;
        // The caller must know that some of the batch is gone, to read again before retrying.
        throw new ConflictError(
          conflict.key,
          `${conflict.message}; the first ${deleted} tasks of the batch were deleted`,
        );
      }
      deleted += part.length;
    }
  }

  /**
   * The conflict that made a transaction comparing each task's mod revision fail, from its
   * failure branch (a keys-only range of each task, in order).
   */
  #revisionConflict(
    part: { id: string; expectedRevision: bigint }[],
    response: ITxnResponse,
    write: string,
  ): ConflictError {
    for (const [i, { id, expectedRevision }] of part.entries()) {
      const current = response.responses[i].response_range.kvs[0];
      const conflict = updateConflict(
        id,
        expectedRevision,
        current && BigInt(current.mod_revision),
      );
      if (conflict) return conflict;
    }
    // Everything matches now: the conflicting write was undone between compare and read.
    const id = part[0].id;
    return new ConflictError(`tasks/${id}`, `Task ${id} changed during the ${write}`);
  }

  async listTasks(options: ListTasksOptions = {}): Promise<Versioned<TaskRecord>[]> {
    const limit = checkLimit(options.limit);
    if (limit === 0) return [];
    const base = options.state === undefined ? "tasks/" : `index/${options.state}/`;
    const range = {
      key: options.afterId === undefined
        ? this.#key(base)
        : this.#key(`${base}${options.afterId}\0`),
      range_end: prefixEnd(this.#key(base)),
      limit: limit ?? 0,
    };
    return await this.#run(async (call) => {
      if (options.state === undefined) {
        const response = await this.#client.range(range, call);
        return response.kvs.map((kv) => decode<TaskRecord>(kv));
      }
      const index = await this.#client.range({ ...range, keys_only: true }, call);
      const ids = index.kvs.map((kv) => this.#idFromIndexKey(kv.key, options.state!));
      return await this.#readTasks(ids, index.header.revision, call);
    });
  }

  async listActiveTasks(): Promise<Versioned<TaskRecord>[]> {
    const active: TaskState[] = ["pending", "scheduled"];
    return await this.#run(async (call) => {
      const index = await this.#client.txn({
        success: active.map((state) => ({
          request_range: {
            key: this.#key(`index/${state}/`),
            range_end: prefixEnd(this.#key(`index/${state}/`)),
            keys_only: true,
          },
        })),
      }, call);
      const ids = active.flatMap((state, i) =>
        index.responses[i].response_range.kvs.map((kv) => this.#idFromIndexKey(kv.key, state))
      );
      const tasks = await this.#readTasks(ids, index.header.revision, call);
      // Key order is byte order, which is what the other lists return.
      return tasks.sort((a, b) => Buffer.compare(Buffer.from(a.value.id), Buffer.from(b.value.id)));
    });
  }

  /** The mod revision of each task that exists, read in one round trip. */
  async #currentRevisions(ids: string[], deadline: number): Promise<Map<string, bigint>> {
    const responses = await this.#run((call) =>
      Promise.all(
        split(ids, MAX_TXN_OPS, () => 0).map((part) =>
          this.#client.txn({
            success: part.map((id) => ({
              request_range: { key: this.#taskKey(id), keys_only: true },
            })),
          }, call)
        ),
      ), deadline);
    const revisions = new Map<string, bigint>();
    for (const response of responses) {
      for (const r of response.responses) {
        for (const kv of r.response_range.kvs) {
          revisions.set(this.#idFromTaskKey(kv.key), BigInt(kv.mod_revision));
        }
      }
    }
    return revisions;
  }

  /**
   * Reads the given tasks as they were at `revision` (when their index entries were read),
   * so a task that changed state meanwhile is still listed as it was: one snapshot.
   */
  async #readTasks(
    ids: string[],
    revision: string,
    call: CallOptions,
  ): Promise<Versioned<TaskRecord>[]> {
    const parts = split(ids, MAX_TXN_OPS, () => 0);
    const responses = await Promise.all(parts.map((part) =>
      this.#client.txn({
        success: part.map((id) => ({ request_range: { key: this.#taskKey(id), revision } })),
      }, call)
    ));
    return responses.flatMap((response) =>
      response.responses.flatMap((r) => r.response_range.kvs.map((kv) => decode<TaskRecord>(kv)))
    );
  }

  async putWorker(
    worker: WorkerRecord,
    expectedRevision: bigint,
  ): Promise<Versioned<WorkerRecord>> {
    const key = this.#key(`workers/${worker.id}`);
    const response = await this.#txn({
      compare: [
        expectedRevision === 0n
          ? { key, target: "Create", result: "Equal", create_revision: 0 }
          : { key, target: "Mod", result: "Equal", mod_revision: expectedRevision.toString() },
      ],
      success: [{ request_put: { key, value: encode(worker) } }],
      failure: [{ request_range: { key, keys_only: true } }],
    });
    if (!response.succeeded) {
      const current = response.responses[0].response_range.kvs[0];
      const message = !current
        ? `Worker ${worker.id} does not exist`
        : expectedRevision === 0n
        ? `Worker ${worker.id} already exists`
        : `Worker ${worker.id} changed since revision ${expectedRevision} (now ${current.mod_revision})`;
      throw new ConflictError(`workers/${worker.id}`, message);
    }
    return { value: worker, revision: BigInt(response.header.revision) };
  }

  async getWorker(id: string): Promise<Versioned<WorkerRecord> | undefined> {
    const response = await this.#run((call) =>
      this.#client.range({ key: this.#key(`workers/${id}`) }, call)
    );
    const kv = response.kvs[0];
    return kv ? decode<WorkerRecord>(kv) : undefined;
  }

  async listWorkers(): Promise<Versioned<WorkerRecord>[]> {
    const response = await this.#run((call) =>
      this.#client.range({
        key: this.#key("workers/"),
        range_end: prefixEnd(this.#key("workers/")),
      }, call)
    );
    return response.kvs.map((kv) => decode<WorkerRecord>(kv));
  }

  async deleteWorker(id: string, expectedRevision: bigint): Promise<void> {
    // A mod revision of 0 would match a missing key, and "delete" a worker that is not there.
    if (expectedRevision <= 0n) {
      throw new ConflictError(`workers/${id}`, `Worker ${id} was never stored`);
    }
    const key = this.#key(`workers/${id}`);
    const response = await this.#txn({
      compare: [{ key, target: "Mod", result: "Equal", mod_revision: expectedRevision.toString() }],
      success: [{ request_delete_range: { key } }],
      failure: [{ request_range: { key, keys_only: true } }],
    });
    if (!response.succeeded) {
      const current = response.responses[0].response_range.kvs[0];
      throw new ConflictError(
        `workers/${id}`,
        !current
          ? `Worker ${id} does not exist`
          : `Worker ${id} changed since revision ${expectedRevision} (now ${current.mod_revision})`,
      );
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#client.close();
    }
    return Promise.resolve();
  }

  /**
   * Takes back the writes of a batch that failed part-way, then returns the error to throw.
   * If the undo fails too, the error says so: the batch is then partly stored.
   */
  async #undo(done: Undo[], error: unknown): Promise<unknown> {
    if (done.length === 0) return error;
    try {
      for (const part of split(done, UNDOS_PER_TXN, (u) => u.previous?.value.length ?? 0)) {
        await this.#txn({
          // One nested transaction per task: a task someone changed since is left alone
          // without blocking the undo of the others.
          success: part.map((undo): IRequestOp => ({
            request_txn: {
              compare: [{
                key: this.#taskKey(undo.id),
                target: "Mod",
                result: "Equal",
                mod_revision: undo.revision.toString(),
              }],
              success: undo.previous
                ? [
                  { request_put: { key: this.#taskKey(undo.id), value: undo.previous.value } },
                  ...(undo.previous.state === undo.state ? [] : [
                    { request_delete_range: { key: this.#indexKey(undo.state, undo.id) } },
                    {
                      request_put: {
                        key: this.#indexKey(undo.previous.state, undo.id),
                        value: EMPTY,
                      },
                    },
                  ]),
                ]
                : [
                  { request_delete_range: { key: this.#taskKey(undo.id) } },
                  { request_delete_range: { key: this.#indexKey(undo.state, undo.id) } },
                ],
            },
          })),
        });
      }
    } catch (undoError) {
      const message = `${(error as Error).message}; ${done.length} task writes of the batch ` +
        `had already been made and could not be taken back: ${(undoError as Error).message}`;
      return undoError instanceof StoreUnavailableError
        ? new StoreUnavailableError(message, { cause: error })
        : new Error(message, { cause: error });
    }
    return error;
  }

  #txn(
    request: { compare?: ICompare[]; success?: IRequestOp[]; failure?: IRequestOp[] },
    deadline = this.#deadline(),
  ): Promise<ITxnResponse> {
    return this.#run((call) => this.#client.txn(request, call), deadline);
  }

  #deadline(): number {
    return Date.now() + this.#timeoutMs;
  }

  /**
   * Runs requests against one deadline (by default, the store's timeout from now) and turns
   * etcd's failures into the store's errors. Each client call gives up at the deadline itself
   * (EndpointRotation: connecting included), so no timer of its own is needed here.
   */
  async #run<T>(fn: (call: CallOptions) => Promise<T>, deadline = this.#deadline()): Promise<T> {
    if (this.#closed) throw new Error("The etcd store is closed");
    try {
      return await fn({ deadline });
    } catch (error) {
      throw this.#translate(error);
    }
  }

  #translate(error: unknown): unknown {
    if (
      error instanceof ConflictError || error instanceof StoreUnavailableError ||
      error instanceof StoreFullError
    ) {
      return error;
    }
    const message = error instanceof Error ? error.message : String(error);
    if (isUnavailable(error)) {
      return new StoreUnavailableError(`etcd at ${this.#where} is unavailable: ${message}`, {
        cause: error,
      });
    }
    if (isNoSpaceError(error)) {
      return new StoreFullError(
        `etcd at ${this.#where} is full (${message}): it refuses writes until space is freed`,
        { cause: error },
      );
    }
    return new Error(`etcd at ${this.#where} refused the request: ${message}`, { cause: error });
  }

  #key(suffix: string): string {
    return this.#prefix + suffix;
  }

  #taskKey(id: string): string {
    return this.#key(`tasks/${id}`);
  }

  #indexKey(state: TaskState, id: string): string {
    return this.#key(`index/${state}/${id}`);
  }

  #idFromTaskKey(key: Buffer): string {
    return key.subarray(Buffer.byteLength(`${this.#prefix}tasks/`)).toString();
  }

  #idFromIndexKey(key: Buffer, state: TaskState): string {
    return key.subarray(Buffer.byteLength(`${this.#prefix}index/${state}/`)).toString();
  }
}

function updateConflict(
  id: string,
  expected: bigint,
  current: bigint | undefined,
): ConflictError | undefined {
  if (current === undefined) {
    return new ConflictError(`tasks/${id}`, `Task ${id} does not exist`);
  }
  if (current !== expected) {
    return new ConflictError(
      `tasks/${id}`,
      `Task ${id} changed since revision ${expected} (now ${current})`,
    );
  }
  return undefined;
}

function isUnavailable(error: unknown): boolean {
  return error instanceof EtcdUnavailableError;
}

function encode(record: TaskRecord | WorkerRecord): Buffer {
  return Buffer.from(JSON.stringify(record));
}

function decode<T>(kv: IKeyValue): Versioned<T> {
  return { value: JSON.parse(kv.value.toString()) as T, revision: BigInt(kv.mod_revision) };
}

/** The smallest key after every key that starts with `prefix` (etcd's range_end). */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // All 0xff: to the end of the keyspace.
}

function checkLimit(limit: number | undefined): number | undefined {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new RangeError(`The list limit must be a whole number >= 0, not ${limit}`);
  }
  return limit;
}

/**
 * Cuts items into runs of at most `count` operations (an item takes `ops` of them, one
 * unless told) and (roughly) MAX_TXN_BYTES.
 */
function split<T>(
  items: T[],
  count: number,
  bytes: (item: T) => number,
  ops: (item: T) => number = () => 1,
): T[][] {
  const parts: T[][] = [];
  let current: T[] = [];
  let size = 0;
  let taken = 0;
  for (const item of items) {
    const itemSize = bytes(item) + 64;
    const itemOps = ops(item);
    if (
      current.length > 0 && (taken + itemOps > count || size + itemSize > MAX_TXN_BYTES)
    ) {
      parts.push(current);
      current = [];
      size = 0;
      taken = 0;
    }
    current.push(item);
    size += itemSize;
    taken += itemOps;
  }
  if (current.length > 0) parts.push(current);
  return parts;
}
