/**
 * The attempts whose processes run now, kept in state_dir/running.jsonl (a journal, see
 * journal_file.ts), so that a worker killed with SIGKILL finds the processes of its previous
 * life when it starts again. A record is written just before the spawn (begin: no pid yet),
 * written again with the pid once the process exists, and removed once the attempt's report is
 * in the outbox: at every moment a process has a record, a report, or both (a crash between
 * the two leaves both, and the report wins). The record before the spawn is there because a
 * SIGKILL can land after the spawn and before the pid is written; a CI run showed it does.
 *
 * Workers before the journal kept one file per record in state_dir/running/; start() moves
 * what it finds there into the journal.
 */
import type { Logger } from "../shared/log.ts";
import { attemptEntryKey, AttemptJournal } from "./journal_file.ts";
import { openJournalFrom } from "./legacy_folder.ts";
import { readBootId, readProcStatSync } from "./proc.ts";
import type { StartTimeRange } from "./posix_spawn.ts";

/** One record of state_dir/running.jsonl (snake_case: people read these files). */
export interface RunningRecord {
  task_id: string;
  attempt: number;
  /**
   * The process, and its process group (the task runs in its own group). Null in a record
   * written before the spawn: a next life that finds one looks for the attempt's processes by
   * the variables of their environment (GO_SCHEDULE_TASK_ID and GO_SCHEDULE_ATTEMPT).
   */
  pid: number | null;
  /**
   * The process's start time as /proc/<pid>/stat counts it (field 22, clock ticks since
   * boot), so that a pid reused by another process is not taken for ours: the earliest it can
   * be. Null when it is not known (the process was gone before /proc was read).
   */
  start_time: number | null;
  /**
   * The latest the start time can be. A worker that spawns through posix_spawn knows it to
   * within the spawn call (posix_spawn.ts); absent in records of workers before that, whose
   * start_time is exact.
   */
  start_time_latest?: number | null;
  /** The machine's boot the start time counts from; after a reboot nothing of ours is left. */
  boot_id: string | null;
  /** The grace between SIGTERM and SIGKILL the task asked for. */
  kill_timeout_ms: number;
  /** When the attempt started, in ms since the epoch. */
  started_at: number;
}

export interface NewRecord {
  taskId: string;
  attempt: number;
  pid: number;
  startedAt: number;
  /** Where the spawn tells it; otherwise add() reads /proc. */
  startTime?: StartTimeRange;
  killTimeoutMs: number;
}

/** What is known of an attempt before its process exists. */
export interface BegunRecord {
  taskId: string;
  attempt: number;
  startedAt: number;
  killTimeoutMs: number;
}

export interface RunningRecordsOptions {
  /** The worker's state_dir. */
  stateDir: string;
  log: Logger;
}

export class RunningRecords extends AttemptJournal<RunningRecord> {
  /** Opens state_dir/running.jsonl, moving the records of the old layout (running/) into it. */
  constructor(options: RunningRecordsOptions) {
    const path = `${options.stateDir}/running.jsonl`;
    super(path, "running records", () =>
      openJournalFrom(path, {
        dir: `${options.stateDir}/running`,
        parse: checkRecord,
        keyOf: (record) => attemptEntryKey(record.task_id, record.attempt),
        unreadable: "remove",
        log: options.log,
      }));
  }

  /** Records an attempt whose process is about to be spawned (its pid comes with add()). */
  begin(record: BegunRecord): void {
    this.write({
      task_id: record.taskId,
      attempt: record.attempt,
      pid: null,
      start_time: null,
      boot_id: null,
      kill_timeout_ms: record.killTimeoutMs,
      started_at: record.startedAt,
    });
  }

  /** Records a process that was just started; without its start time, reads it from /proc. */
  async add(record: NewRecord): Promise<void> {
    const read = record.startTime ? undefined : readProcStatSync(record.pid)?.startTime;
    const startTime = record.startTime ??
      (read !== undefined ? { earliest: read, latest: read } : undefined);
    const written: RunningRecord = {
      task_id: record.taskId,
      attempt: record.attempt,
      pid: record.pid,
      start_time: startTime?.earliest ?? null,
      start_time_latest: startTime?.latest ?? null,
      boot_id: (await readBootId()) ?? null,
      kill_timeout_ms: record.killTimeoutMs,
      started_at: record.startedAt,
    };
    this.write(written);
  }

  /** The records kept: those of a previous life, after start(), and those added since. */
  list(): Promise<RunningRecord[]> {
    return Promise.resolve(this.records());
  }
}

function checkRecord(data: unknown): RunningRecord | undefined {
  const r = data as Partial<RunningRecord> | null;
  if (
    typeof r !== "object" || r === null ||
    typeof r.task_id !== "string" || !Number.isInteger(r.attempt) ||
    !(r.pid === null || (Number.isInteger(r.pid) && (r.pid ?? 0) > 1)) ||
    !(r.start_time === null || typeof r.start_time === "number") ||
    !(r.start_time_latest === undefined || r.start_time_latest === null ||
      typeof r.start_time_latest === "number") ||
    !(r.boot_id === null || typeof r.boot_id === "string") ||
    typeof r.kill_timeout_ms !== "number" || typeof r.started_at !== "number"
  ) {
    return undefined;
  }
  return r as RunningRecord;
}
