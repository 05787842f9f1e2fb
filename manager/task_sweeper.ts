/**
 * Removes finished tasks once they have been finished for task_retention, on a timer. Without
 * it the store keeps every task ever run: etcd holds about 800 bytes of each once its history
 * is compacted, so its default 2 GiB quota is full after about 2.5 million tasks, and then it
 * refuses every write.
 *
 * A round walks the done and the dead tasks in id order, which is creation order, and stops at
 * the first one created after the cutoff: a task cannot have finished before it was created.
 * What it reads before that is mostly what it removes (a task that ran longer than its age
 * stays, and is read again next round). Each removal is a compare-and-swap on the revision
 * read, so a task changed meanwhile is left alone.
 */
import type { Clock } from "../shared/clock.ts";
import { systemClock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import { ConflictError, type Store, type TaskDeletion } from "../shared/store/store.ts";
import type { TaskState } from "../shared/task.ts";

/** Tasks read per page, and so removed per store call at most. */
const PAGE = 500;

/** How often a round runs: every minute, or every retention when that is shorter. */
const MAX_INTERVAL_MS = 60_000;

export interface TaskSweeperOptions {
  store: Store;
  retentionMs: number;
  log: Logger;
  clock?: Clock;
  /** Told the ids removed, so that nothing keeps serving them from memory. */
  removed?: (ids: string[]) => void;
}

export class TaskSweeper {
  readonly #options: TaskSweeperOptions;
  readonly #clock: Clock;
  #timer: unknown;
  #round: Promise<number> | undefined;
  #failing = false;

  constructor(options: TaskSweeperOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  get intervalMs(): number {
    return Math.min(MAX_INTERVAL_MS, this.#options.retentionMs);
  }

  /** Starts the rounds: one an interval from now, and one every interval after. */
  start(): void {
    this.#timer ??= this.#clock.setInterval(() => {
      // A round that outlives its interval (many tasks, a slow store) is not run twice at once.
      this.#round ??= this.sweep().finally(() => this.#round = undefined);
    }, this.intervalMs);
  }

  /** Stops the rounds and waits for one under way. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) this.#clock.clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  /** One round; resolves to how many tasks it removed. Failures are logged, not thrown. */
  async sweep(): Promise<number> {
    const { log, retentionMs } = this.#options;
    const cutoff = this.#clock.now() - retentionMs;
    let removed = 0;
    try {
      for (const state of ["done", "dead"] as const) {
        removed += await this.#sweepState(state, cutoff);
      }
      if (removed > 0) {
        log.info("removed finished tasks past task_retention", {
          tasks: removed,
          finished_before: new Date(cutoff).toISOString(),
        });
      }
      if (this.#failing) log.info("removing finished tasks again");
      this.#failing = false;
    } catch (cause) {
      // Once per outage: the store's unavailability is told elsewhere too.
      if (!this.#failing) {
        log.warn("cannot remove finished tasks yet; will retry", {
          cause,
          removed_before: removed,
        });
      }
      this.#failing = true;
    }
    return removed;
  }

  async #sweepState(state: TaskState, cutoff: number): Promise<number> {
    const { store } = this.#options;
    let removed = 0;
    let afterId: string | undefined;
    for (;;) {
      const page = await store.listTasks({ state, afterId, limit: PAGE });
      const deletions: TaskDeletion[] = [];
      let pastCutoff = false;
      for (const { value, revision } of page) {
        if (value.createdAt > cutoff) {
          pastCutoff = true;
          break;
        }
        if ((value.finishedAt ?? Infinity) <= cutoff) {
          deletions.push({ id: value.id, expectedRevision: revision, state });
        }
      }
      removed += await this.#remove(deletions);
      if (pastCutoff || page.length < PAGE) return removed;
      afterId = page[page.length - 1].value.id;
    }
  }

  /**
   * Removes the batch, or after a conflict each task alone, so that one changed task spares
   * only itself.
   */
  async #remove(deletions: TaskDeletion[]): Promise<number> {
    if (deletions.length === 0) return 0;
    const { store, removed } = this.#options;
    const gone: string[] = [];
    try {
      await store.deleteTasks(deletions);
      gone.push(...deletions.map((d) => d.id));
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      for (const deletion of deletions) {
        try {
          await store.deleteTasks([deletion]);
          gone.push(deletion.id);
        } catch (e) {
          if (!(e instanceof ConflictError)) throw e;
          // Gone already (an earlier part of the batch, or another manager), or changed since
          // it was read: then it is not ours to remove now.
          if (!await store.getTask(deletion.id)) gone.push(deletion.id);
        }
      }
    }
    removed?.(gone);
    return gone.length;
  }
}
