/**
 * The attempts whose processes run now, one file each in state_dir/running, so that a worker
 * killed with SIGKILL finds the processes of its previous life when it starts again. A record
 * is written once the process exists and removed once the attempt's report is in the outbox:
 * at every moment an attempt has a record, a report, or both (a crash between the two leaves
 * both, and the report wins).
 */
import type { Logger } from "../shared/log.ts";
import { filePrefix } from "./log_store.ts";
import { readBootId, readProcStatSync } from "./proc.ts";
import { removeFileSync, writeFileAtomicSync } from "./small_files.ts";

/** One file of state_dir/running (snake_case: people read these files). */
export interface RunningRecord {
  task_id: string;
  attempt: number;
  /** The process, and its process group (the task runs in its own group). */
  pid: number;
  /**
   * The process's start time from /proc/<pid>/stat (field 22, clock ticks since boot), so
   * that a pid reused by another process is not taken for ours. Null when the process was
   * already gone by the time it was read.
   */
  start_time: number | null;
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
  killTimeoutMs: number;
}

export interface RunningRecordsOptions {
  /** The folder (state_dir/running). */
  dir: string;
  log: Logger;
}

export class RunningRecords {
  readonly #options: RunningRecordsOptions;

  constructor(options: RunningRecordsOptions) {
    this.#options = options;
  }

  get dir(): string {
    return this.#options.dir;
  }

  /** Creates the folder. */
  async start(): Promise<void> {
    await Deno.mkdir(this.#options.dir, { recursive: true });
  }

  /** Records a process that was just started; reads its start time from /proc. */
  async add(record: NewRecord): Promise<void> {
    const stat = readProcStatSync(record.pid);
    const written: RunningRecord = {
      task_id: record.taskId,
      attempt: record.attempt,
      pid: record.pid,
      start_time: stat?.startTime ?? null,
      boot_id: (await readBootId()) ?? null,
      kill_timeout_ms: record.killTimeoutMs,
      started_at: record.startedAt,
    };
    this.write(written);
  }

  /** Writes a record whole: a new file renamed over the old, so a crash leaves one or the other. */
  write(record: RunningRecord): void {
    writeFileAtomicSync(this.#path(record.task_id, record.attempt), JSON.stringify(record) + "\n");
  }

  remove(taskId: string, attempt: number): void {
    removeFileSync(this.#path(taskId, attempt));
  }

  /**
   * The records left in the folder. Half-written files (a crash between write and rename) and
   * files that do not hold a record are removed, with a warning for the latter.
   */
  async list(): Promise<RunningRecord[]> {
    const records: RunningRecord[] = [];
    for await (const entry of Deno.readDir(this.#options.dir)) {
      if (!entry.isFile) continue;
      const path = `${this.#options.dir}/${entry.name}`;
      if (entry.name.endsWith(".json.tmp")) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!entry.name.endsWith(".json")) continue;
      let record: RunningRecord | undefined;
      try {
        record = checkRecord(JSON.parse(await Deno.readTextFile(path)));
      } catch {
        // Not a record; said below.
      }
      if (record) records.push(record);
      else {
        this.#options.log.warn("removing a file of state_dir/running that is not a record", {
          path,
        });
        await Deno.remove(path).catch(() => {});
      }
    }
    return records;
  }

  #path(taskId: string, attempt: number): string {
    return `${this.#options.dir}/${filePrefix(taskId, attempt)}.json`;
  }
}

function checkRecord(data: unknown): RunningRecord | undefined {
  const r = data as Partial<RunningRecord> | null;
  if (
    typeof r !== "object" || r === null ||
    typeof r.task_id !== "string" || !Number.isInteger(r.attempt) ||
    !Number.isInteger(r.pid) || (r.pid ?? 0) <= 1 ||
    !(r.start_time === null || typeof r.start_time === "number") ||
    !(r.boot_id === null || typeof r.boot_id === "string") ||
    typeof r.kill_timeout_ms !== "number" || typeof r.started_at !== "number"
  ) {
    return undefined;
  }
  return r as RunningRecord;
}
