/**
 * The attempts waiting in the worker's queue, kept in state_dir/queued.jsonl (a journal, see
 * journal_file.ts), so that a worker killed with SIGKILL gives them back when it starts again
 * (recoverQueued): the manager then places them again without counting a retry, where
 * otherwise it would take them for lost, and a task without retries would end dead though it
 * never ran. A record is written when an attempt arrives, whether it waits in the queue or
 * starts at once (its log files are opened before the spawn), and removed once its running
 * record is written, just before its spawn, or once its give-back report is in the outbox. So
 * an attempt the worker acknowledged always has one record or the other.
 */
import type { Logger } from "../shared/log.ts";
import { notStartedResult } from "./executor.ts";
import { AttemptJournal, JournalFile } from "./journal_file.ts";
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

export class QueuedRecords extends AttemptJournal<QueuedRecord> {
  constructor(options: { stateDir: string; log: Logger }) {
    const path = `${options.stateDir}/queued.jsonl`;
    super(
      path,
      "queued records",
      () => JournalFile.open({ path, parse: checkRecord, log: options.log }),
    );
  }

  add(taskId: string, attempt: number, queuedAt: number): void {
    this.write({ task_id: taskId, attempt, queued_at: queuedAt });
  }
}

/**
 * Gives back every attempt a previous life left queued: a not_started report in the outbox
 * (unless one is there already), then the record removed. Before the first Hello, which lists
 * the reports as unreported, so the manager never takes these attempts for lost.
 */
export function recoverQueued(records: QueuedRecords, outbox: ReportOutbox, now: number): number {
  let given = 0;
  for (const record of records.records()) {
    if (!outbox.has(record.task_id, record.attempt)) {
      outbox.add({
        taskId: record.task_id,
        attempt: record.attempt,
        result: notStartedResult(NOT_STARTED_RESTARTED, now),
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
