import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { TaskRecord, TaskState, WorkerRecord } from "../task.ts";
import {
  ConflictError,
  type ListTasksOptions,
  type Store,
  StoreFullError,
  StoreUnavailableError,
  type TaskDeletion,
  type TaskUpdate,
  type Versioned,
} from "./store.ts";

export interface SqliteStoreOptions {
  /** The database file. Its directory is created if missing. `:memory:` keeps nothing. */
  path: string;
  /** How long a write waits for another process's write to finish, in ms. Default 5000. */
  busyTimeoutMs?: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  );
  INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
  CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    revision INTEGER NOT NULL,
    value TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, id);
  CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    value TEXT NOT NULL
  );
`;

/**
 * Opens (creating if needed) the embedded store used when no etcd is configured.
 *
 * One counter in the database is the revision: every write transaction takes the next value
 * and stamps it on the records it writes, as etcd does, so revisions mean the same in both
 * stores. Ids compare as bytes (SQLite's BINARY collation over UTF-8), which is etcd's key
 * order too.
 */
export function createSqliteStore(options: SqliteStoreOptions): Store {
  const { path } = options;
  let db: DatabaseSync | undefined;
  try {
    if (path !== ":memory:") Deno.mkdirSync(dirname(path), { recursive: true });
    db = new DatabaseSync(path);
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5_000)}`);
    // WAL lets lists run while a write is in progress (for other processes reading the file).
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(SCHEMA);
    return new SqliteStore(db, path);
  } catch (error) {
    db?.close();
    throw new Error(`Cannot open the SQLite store at ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

interface Row {
  value: string;
  revision: bigint;
}

class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  /** The database file, named in the errors a user reads. */
  readonly #path: string;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.#path = path;
  }

  createTasks(tasks: TaskRecord[]): Promise<Versioned<TaskRecord>[]> {
    return this.#write((revision) =>
      tasks.map((task) => {
        const { changes } = this.#sql(
          `INSERT INTO tasks (id, state, revision, value) VALUES (?, ?, ?, ?)
           ON CONFLICT (id) DO NOTHING`,
        ).run(task.id, task.state, revision, JSON.stringify(task));
        if (Number(changes) === 0) {
          // Taken before this batch or earlier in it; the rollback undoes the rest.
          throw new ConflictError(`tasks/${task.id}`, `Task ${task.id} already exists`);
        }
        return { value: task, revision };
      })
    );
  }

  getTask(id: string): Promise<Versioned<TaskRecord> | undefined> {
    return this.#read(() => {
      const row = this.#sql("SELECT value, revision FROM tasks WHERE id = ?").get(id);
      return row ? decode<TaskRecord>(row as unknown as Row) : undefined;
    });
  }

  updateTasks(updates: TaskUpdate[]): Promise<Versioned<TaskRecord>[]> {
    const seen = new Set<string>();
    for (const { task } of updates) {
      if (seen.has(task.id)) {
        return Promise.reject(new Error(`Task ${task.id} appears more than once in one update`));
      }
      seen.add(task.id);
    }
    return this.#write((revision) =>
      updates.map(({ task, expectedRevision }) => {
        const { changes } = this.#sql(
          "UPDATE tasks SET state = ?, revision = ?, value = ? WHERE id = ? AND revision = ?",
        ).run(task.state, revision, JSON.stringify(task), task.id, expectedRevision);
        if (Number(changes) === 0) throw this.#taskConflict(task.id, expectedRevision);
        return { value: task, revision };
      })
    );
  }

  deleteTasks(deletions: TaskDeletion[]): Promise<void> {
    const seen = new Set<string>();
    for (const { id } of deletions) {
      if (seen.has(id)) {
        return Promise.reject(new Error(`Task ${id} appears more than once in one deletion`));
      }
      seen.add(id);
    }
    // #write would take a revision for a write that writes nothing.
    if (deletions.length === 0) return Promise.resolve();
    // One transaction for the whole batch: SQLite has no limit to cut it by. The state index
    // (tasks_by_state) is SQLite's own and goes with the row, so `state` is not needed here.
    return this.#write(() => {
      for (const { id, expectedRevision } of deletions) {
        const { changes } = this.#sql("DELETE FROM tasks WHERE id = ? AND revision = ?")
          .run(id, expectedRevision);
        // The rollback puts back the rows deleted before this one.
        if (Number(changes) === 0) throw this.#taskConflict(id, expectedRevision);
      }
    });
  }

  listTasks(options: ListTasksOptions = {}): Promise<Versioned<TaskRecord>[]> {
    const { state, afterId, limit } = options;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
      return Promise.reject(
        new RangeError(`The list limit must be a whole number >= 0, not ${limit}`),
      );
    }
    return this.#read(() => {
      const where: string[] = [];
      const params: SQLInputValue[] = [];
      if (state !== undefined) {
        where.push("state = ?");
        params.push(state);
      }
      if (afterId !== undefined) {
        where.push("id > ?");
        params.push(afterId);
      }
      params.push(limit ?? -1);
      const sql = `SELECT value, revision FROM tasks
        ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY id LIMIT ?`;
      return this.#sql(sql).all(...params).map((row) => decode<TaskRecord>(row as unknown as Row));
    });
  }

  listActiveTasks(): Promise<Versioned<TaskRecord>[]> {
    const active: TaskState[] = ["pending", "scheduled"];
    return this.#read(() =>
      this.#sql(
        "SELECT value, revision FROM tasks WHERE state IN (?, ?) ORDER BY id",
      ).all(...active).map((row) => decode<TaskRecord>(row as unknown as Row))
    );
  }

  putWorker(worker: WorkerRecord, expectedRevision: bigint): Promise<Versioned<WorkerRecord>> {
    return this.#write((revision) => {
      const value = JSON.stringify(worker);
      const { changes } = expectedRevision === 0n
        ? this.#sql(
          `INSERT INTO workers (id, revision, value) VALUES (?, ?, ?)
           ON CONFLICT (id) DO NOTHING`,
        ).run(worker.id, revision, value)
        : this.#sql("UPDATE workers SET revision = ?, value = ? WHERE id = ? AND revision = ?")
          .run(revision, value, worker.id, expectedRevision);
      if (Number(changes) === 0) {
        const current = this.#sql("SELECT revision FROM workers WHERE id = ?").get(worker.id);
        throw new ConflictError(
          `workers/${worker.id}`,
          !current
            ? `Worker ${worker.id} does not exist`
            : expectedRevision === 0n
            ? `Worker ${worker.id} already exists`
            : `Worker ${worker.id} changed since revision ${expectedRevision} (now ${current.revision})`,
        );
      }
      return { value: worker, revision };
    });
  }

  getWorker(id: string): Promise<Versioned<WorkerRecord> | undefined> {
    return this.#read(() => {
      const row = this.#sql("SELECT value, revision FROM workers WHERE id = ?").get(id);
      return row ? decode<WorkerRecord>(row as unknown as Row) : undefined;
    });
  }

  listWorkers(): Promise<Versioned<WorkerRecord>[]> {
    return this.#read(() =>
      this.#sql("SELECT value, revision FROM workers ORDER BY id").all()
        .map((row) => decode<WorkerRecord>(row as unknown as Row))
    );
  }

  deleteWorker(id: string, expectedRevision: bigint): Promise<void> {
    return this.#write(() => {
      const { changes } = this.#sql("DELETE FROM workers WHERE id = ? AND revision = ?")
        .run(id, expectedRevision);
      if (Number(changes) === 0) {
        const current = this.#sql("SELECT revision FROM workers WHERE id = ?").get(id);
        throw new ConflictError(
          `workers/${id}`,
          current
            ? `Worker ${id} changed since revision ${expectedRevision} (now ${current.revision})`
            : `Worker ${id} does not exist`,
        );
      }
    });
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#statements.clear();
      this.#db.close();
    }
    return Promise.resolve();
  }

  /** Why a write guarded by `expectedRevision` found no row to change. */
  #taskConflict(id: string, expectedRevision: bigint): ConflictError {
    const current = this.#sql("SELECT revision FROM tasks WHERE id = ?").get(id);
    return new ConflictError(
      `tasks/${id}`,
      current
        ? `Task ${id} changed since revision ${expectedRevision} (now ${current.revision})`
        : `Task ${id} does not exist`,
    );
  }

  /** Prepares each distinct statement once; revisions are read as bigint. */
  #sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      statement.setReadBigInts(true);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #read<T>(fn: () => T): Promise<T> {
    try {
      this.#checkOpen();
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(translate(error, this.#path));
    }
  }

  /**
   * Runs fn in one write transaction stamped with the next revision. IMMEDIATE takes the
   * write lock up front, so the revision read here cannot be taken by another writer.
   */
  #write<T>(fn: (revision: bigint) => T): Promise<T> {
    try {
      this.#checkOpen();
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        const row = this.#sql(
          "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value",
        ).get();
        const result = fn(row!.value as bigint);
        this.#db.exec("COMMIT");
        return Promise.resolve(result);
      } catch (error) {
        // SQLite has already rolled back after some errors (a full disk among them); the
        // error that counts is the first.
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      return Promise.reject(translate(error, this.#path));
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("The SQLite store is closed");
  }
}

function decode<T>(row: Row): Versioned<T> {
  return { value: JSON.parse(row.value) as T, revision: row.revision };
}

/**
 * SQLite's result codes by their fixed messages (sqlite3ErrStr): Deno's node:sqlite (2.9) gives
 * only the message, where Node's also gives the code as `errcode`.
 */
const BUSY = { codes: [5, 6], messages: ["database is locked", "database table is locked"] };
const FULL = { codes: [13], messages: ["database or disk is full"] };

/** Whether the error is SQLite's answer `kind`, by its code where there is one. */
function isSqlite(error: unknown, kind: typeof BUSY): boolean {
  const code = (error as { errcode?: number }).errcode;
  if (code !== undefined) return kind.codes.includes(code & 0xff);
  return error instanceof Error && kind.messages.includes(error.message);
}

function translate(error: unknown, path: string): unknown {
  if (isSqlite(error, BUSY)) {
    return new StoreUnavailableError(
      `The SQLite store is busy: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (isSqlite(error, FULL)) {
    return new StoreFullError(
      `the SQLite store at ${path} is full (${(error as Error).message}): ` +
        "it refuses writes until space is freed on its disk",
      { cause: error },
    );
  }
  return error;
}
