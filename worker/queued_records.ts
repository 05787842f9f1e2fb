/**
 * The attempts waiting in the worker's queue, kept in state_dir/queued.jsonl (a journal, see
 * journal_file.ts), so that a worker killed with SIGKILL gives them back when it starts again
 * (recoverQueued): the manager then places them again without counting a retry, where
 * otherwise it would take them for lost, and a task without retries would end dead though it
 * never ran. A record is written when an attempt is queued and removed when it leaves the
 * queue: when it starts (its running record follows once the process exists), or when its
 * give-back report is in the outbox.
 */
import type { Logger } from "../shared/log.ts";
import { attemptEntryKey, JournalFile } from "./journal_file.ts";
import type { ReportOutbox } from "./report_outbox.ts";

/** One record of state_dir/queued.jsonl (snake_case: people read these files). */
export interface QueuedRecord {
  task_id: string;
  attempt: number;
  /** When the attempt was queued, in ms since the epoch. */
  queued_at: number;
}

/** Why the attempts of a previous life's queue were given back. */
export const NOT_STARTED_RESTARTED = "the worker restarted before starting it";

export class QueuedRecords {
  readonly #stateDir: string;
  readonly #log: Logger;
  #journal: JournalFile<QueuedRecord> | undefined;

  constructor(options: { stateDir: string; log: Logger }) {
    this.#stateDir = options.stateDir;
    this.#log = options.log;
  }

  get path(): string {
    return `${this.#stateDir}/queued.jsonl`;
  }

  /** Opens the journal and reads the records a previous life left. Close it with close(). */
  async start(): Promise<void> {
    if (this.#journal) throw new Error("the queued records are started already");
    this.#journal = await JournalFile.open({ path: this.path, parse: checkRecord, log: this.#log });
  }

  add(taskId: string, attempt: number, queuedAt: number): void {
    this.#opened().put(attemptEntryKey(taskId, attempt), {
      task_id: taskId,
      attempt,
      queued_at: queuedAt,
    });
  }

  remove(taskId: string, attempt: number): void {
    this.#opened().delete(attemptEntryKey(taskId, attempt));
  }

  list(): QueuedRecord[] {
    return [...this.#opened().entries()].map(([, record]) => record);
  }

  close(): void {
    this.#journal?.close();
    this.#journal = undefined;
  }

  #opened(): JournalFile<QueuedRecord> {
    if (!this.#journal) throw new Error("the queued records are not started");
    return this.#journal;
  }
}

/**
 * Gives back every attempt a previous life left queued: a not_started report in the outbox
 * (unless one is there already), then the record removed. Before the first Hello, which lists
 * the reports as unreported, so the manager never takes these attempts for lost.
 */
export function recoverQueued(records: QueuedRecords, outbox: ReportOutbox, now: number): number {
  let given = 0;
  for (const record of records.list()) {
    if (!outbox.has(record.task_id, record.attempt)) {
      outbox.add({
        taskId: record.task_id,
        attempt: record.attempt,
        result: {
          outcome: { kind: "not_started", reason: NOT_STARTED_RESTARTED },
          output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
          startedAt: now,
          finishedAt: now,
        },
      });
      given++;
    }
    records.remove(record.task_id, record.attempt);
  }
  return given;
}

function checkRecord(data: unknown): QueuedRecord | undefined {
  const r = data as Partial<QueuedRecord> | null;
  if (
    typeof r !== "object" || r === null || typeof r.task_id !== "string" ||
    !Number.isInteger(r.attempt) || typeof r.queued_at !== "number"
  ) {
    return undefined;
  }
  return r as QueuedRecord;
}
