/**
 * Reports of finished tasks, kept in state_dir until the manager has them. A report is
 * written to disk before it is first sent, so neither a lost connection nor a worker restart
 * loses a result; the manager treats a repeated report as the same report.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../shared/log.ts";
import { backoffDelay } from "./backoff.ts";
import { removeFileSync, writeFileAtomicSync } from "./small_files.ts";
import type { ProcessResult } from "./executor.ts";

export interface TaskReport {
  taskId: string;
  attempt: number;
  result: ProcessResult;
}

export interface ReportOutboxOptions {
  /** Folder that holds unsent reports, one JSON file each. */
  dir: string;
  send: (report: TaskReport) => Promise<void>;
  log: Logger;
  /** Retry delays grow up to this. */
  maxRetryDelayMs: number;
  random?: () => number;
}

/**
 * Reports sent at once. Enough to cover every slot of a big worker finishing together; few
 * enough that a reconnecting worker with a long backlog does not flood the manager.
 */
const MAX_REPORTS_IN_FLIGHT = 32;

/** Refusals that will never turn into success: the report is dropped, loudly. */
const PERMANENT = new Set([Code.FailedPrecondition, Code.InvalidArgument, Code.NotFound]);

export class ReportOutbox {
  readonly #options: ReportOutboxOptions;
  readonly #queue = new Map<string, TaskReport>();
  /** Reports sent and not answered yet, by file name, with their sends. */
  readonly #inFlight = new Map<string, Promise<void>>();
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  #closed = false;
  #idle: (() => void)[] = [];

  constructor(options: ReportOutboxOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#queue.size;
  }

  /**
   * The attempts whose reports are here: not delivered yet, or being sent (a report leaves only
   * once the manager accepted it). Every Hello lists them, so that the manager does not take
   * an attempt whose result is on its way for lost.
   */
  unreported(): { taskId: string; attempt: number }[] {
    return [...this.#queue.values()].map(({ taskId, attempt }) => ({ taskId, attempt }));
  }

  has(taskId: string, attempt: number): boolean {
    return this.#queue.has(fileName({ taskId, attempt }));
  }

  /** Loads the reports a previous run could not deliver, and starts sending them. */
  async load(): Promise<number> {
    await Deno.mkdir(this.#options.dir, { recursive: true });
    for await (const entry of Deno.readDir(this.#options.dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = `${this.#options.dir}/${entry.name}`;
      try {
        const report = JSON.parse(await Deno.readTextFile(path)) as TaskReport;
        this.#queue.set(fileName(report), report);
      } catch (e) {
        this.#options.log.warn("ignoring an unreadable report file", { path, cause: e });
      }
    }
    this.flush();
    return this.#queue.size;
  }

  add(report: TaskReport): void {
    const name = fileName(report);
    const path = `${this.#options.dir}/${name}`;
    writeFileAtomicSync(path, JSON.stringify(report));
    this.#queue.set(name, report);
    this.flush();
  }

  /** Sends what is queued now; a connection that comes back calls this to retry at once. */
  flush(): void {
    if (this.#closed) return;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#pump();
  }

  /** Resolves once every report is delivered, or after `timeoutMs` (returns what is left). */
  async drain(timeoutMs: number): Promise<number> {
    if (this.#queue.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idle.push(resolve)),
        new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
      clearTimeout(timer);
    }
    return this.#queue.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    await Promise.all(this.#inFlight.values());
    for (const wake of this.#idle.splice(0)) wake();
  }

  /**
   * Sends queued reports, several at once, each as soon as a lane is free: each waits for the
   * manager to store it (and, on a busy manager, for its answer to travel with the next message
   * to this worker), and reports sent together are stored together (the manager's group
   * commit). A report does not wait for others sent before it. While a retry is scheduled
   * nothing new is sent.
   */
  #pump(): void {
    for (const [name, report] of this.#queue) {
      if (this.#closed || this.#retryTimer !== undefined) return;
      if (this.#inFlight.size >= MAX_REPORTS_IN_FLIGHT) return;
      if (this.#inFlight.has(name)) continue;
      this.#inFlight.set(name, this.#send(name, report));
    }
  }

  async #send(name: string, report: TaskReport): Promise<void> {
    let delivered = true;
    try {
      await this.#options.send(report);
    } catch (e) {
      if (!(e instanceof ConnectError && PERMANENT.has(e.code))) {
        delivered = false;
        // The first failure that may pass stops new sends and schedules a retry of what is
        // left; the sends already out finish on their own.
        if (this.#retryTimer === undefined && !this.#closed) this.#scheduleRetry(e);
      } else {
        this.#options.log.warn("the manager refused a report; dropping it", {
          task: report.taskId,
          attempt: report.attempt,
          why: e.rawMessage,
        });
      }
    }
    this.#inFlight.delete(name);
    if (delivered) {
      this.#failures = 0;
      this.#queue.delete(name);
      try {
        removeFileSync(`${this.#options.dir}/${name}`);
      } catch (e) {
        this.#options.log.warn("cannot remove a delivered report's file", { name, cause: e });
      }
    }
    if (this.#queue.size === 0) { for (const wake of this.#idle.splice(0)) wake(); }
    else this.#pump();
  }

  #scheduleRetry(cause: unknown): void {
    const delay = backoffDelay(
      this.#failures++,
      { initialMs: 200, maxMs: this.#options.maxRetryDelayMs },
      this.#options.random,
    );
    this.#options.log.debug("report not delivered; retrying", { in_ms: delay, cause });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.flush();
    }, delay);
  }
}

function fileName(report: Pick<TaskReport, "taskId" | "attempt">): string {
  return `${report.taskId}.${report.attempt}.json`;
}
