/**
 * Reports of finished tasks, kept in state_dir/outbox.jsonl (a journal, see journal_file.ts)
 * until the manager has them. A report is written to disk before it is first sent, so neither
 * a lost connection nor a worker restart loses a result; the manager treats a repeated report
 * as the same report.
 *
 * Workers before the journal kept one file per report in state_dir/outbox/; load() moves what
 * it finds there into the journal.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../shared/log.ts";
import { backoffDelay } from "./backoff.ts";
import type { ProcessResult } from "./executor.ts";
import { attemptEntryKey, type JournalFile } from "./journal_file.ts";
import { openJournalFrom } from "./legacy_folder.ts";

export interface TaskReport {
  taskId: string;
  attempt: number;
  result: ProcessResult;
}

export interface ReportOutboxOptions {
  /** The worker's state_dir. */
  stateDir: string;
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
  /** The reports kept, in the journal's order; the journal is their copy on disk. */
  readonly #queue = new Map<string, TaskReport>();
  #journal: JournalFile<TaskReport> | undefined;
  /** Reports sent and not answered yet, by key, with their sends. */
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
    return this.#queue.has(reportKey({ taskId, attempt }));
  }

  /** The journal (state_dir/outbox.jsonl). */
  get path(): string {
    return `${this.#options.stateDir}/outbox.jsonl`;
  }

  /**
   * Opens the journal, loads the reports a previous run could not deliver (moving those of the
   * old layout, state_dir/outbox/, into it), and starts sending them. Once, before add().
   */
  async load(): Promise<number> {
    if (this.#journal) throw new Error("the outbox is loaded already");
    const journal = await openJournalFrom(this.path, {
      dir: `${this.#options.stateDir}/outbox`,
      parse: checkReport,
      keyOf: reportKey,
      // Left for a person to look at, as the old worker left them.
      unreadable: "keep",
      log: this.#options.log,
    });
    this.#journal = journal;
    for (const [key, report] of journal.entries()) this.#queue.set(key, report);
    this.flush();
    return this.#queue.size;
  }

  /** Keeps the report (on disk once this returns) and sends it. */
  add(report: TaskReport): void {
    if (!this.#journal) throw new Error("the outbox is not loaded");
    const key = reportKey(report);
    this.#journal.put(key, report);
    this.#queue.set(key, report);
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
    // After the sends: a delivered report's delete line is written as its send ends.
    this.#journal?.close();
    this.#journal = undefined;
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
    for (const [key, report] of this.#queue) {
      if (this.#closed || this.#retryTimer !== undefined) return;
      if (this.#inFlight.size >= MAX_REPORTS_IN_FLIGHT) return;
      if (this.#inFlight.has(key)) continue;
      this.#inFlight.set(key, this.#send(key, report));
    }
  }

  async #send(key: string, report: TaskReport): Promise<void> {
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
    this.#inFlight.delete(key);
    if (delivered) {
      this.#failures = 0;
      this.#queue.delete(key);
      try {
        this.#journal?.delete(key);
      } catch (e) {
        // Sent again after a restart, which the manager takes for the same report.
        this.#options.log.warn("cannot remove a delivered report from the outbox", {
          task: report.taskId,
          attempt: report.attempt,
          cause: e,
        });
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

function reportKey(report: Pick<TaskReport, "taskId" | "attempt">): string {
  return attemptEntryKey(report.taskId, report.attempt);
}

/** A report as read back from disk; its result is the manager's to judge. */
function checkReport(data: unknown): TaskReport | undefined {
  const r = data as Partial<TaskReport> | null;
  if (
    typeof r !== "object" || r === null || typeof r.taskId !== "string" ||
    !Number.isInteger(r.attempt) || typeof r.result !== "object" || r.result === null
  ) {
    return undefined;
  }
  return r as TaskReport;
}
