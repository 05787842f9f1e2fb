/**
 * The worker's task logs: for every attempt it ran, the full stdout and stderr in
 * state_dir/logs/<task_id>.<attempt>.stdout and .stderr (each bounded by log_limit), readable
 * while the attempt runs and after it ended, until log_retention has passed.
 */
import type { Logger } from "../shared/log.ts";
import type { TaskOutput } from "../shared/task_machine.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { type LogReader, readLogTail, StreamLog } from "./stream_log.ts";

export type StreamName = "stdout" | "stderr";

export interface LogStoreOptions {
  /** The folder of the log files (state_dir/logs). */
  dir: string;
  /** Bytes kept per stream per attempt; beyond it the oldest part is dropped and marked. */
  limit: number;
  /** Files of ended attempts are removed once they have not been written for this long. */
  retentionMs: number;
  log: Logger;
  /** Time and the sweep timer; injected in tests. */
  clock?: Clock;
}

/** The two log files of a running attempt, handed to the executor as its output sinks. */
export interface AttemptLogs {
  stdout: StreamLog;
  stderr: StreamLog;
}

/** Old files are looked for this often at most (and at least once per retention period). */
const MAX_SWEEP_INTERVAL_MS = 3_600_000;

/** An attempt in the worker's queue; `left` resolves to its logs once it starts. */
interface QueuedAttempt {
  left: Promise<Promise<AttemptLogs> | undefined>;
  leave: (logs: Promise<AttemptLogs> | undefined) => void;
}

export class LogStore {
  readonly #options: LogStoreOptions;
  readonly #clock: Clock;
  /**
   * Attempts still running, by file name prefix. Registered before their files exist, so a
   * log request that arrives right behind the task (as the manager sends them) waits for the
   * files instead of finding nothing and ending at once.
   */
  readonly #live = new Map<string, Promise<AttemptLogs>>();
  /**
   * Attempts waiting in the worker's queue, by file name prefix: a follower of one waits for
   * its start (or for its give-back, which ends the follow with nothing), where finding no
   * files would end it at once with nothing while the task is still to run.
   */
  readonly #queued = new Map<string, QueuedAttempt>();
  #sweepTimer: unknown;
  #sweeping: Promise<unknown> = Promise.resolve();

  constructor(options: LogStoreOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Creates the folder, removes files past retention, and keeps doing so periodically. */
  async start(): Promise<void> {
    await Deno.mkdir(this.#options.dir, { recursive: true });
    await this.sweep();
    this.#sweepTimer = this.#clock.setInterval(
      () => void this.sweep(),
      Math.max(1000, Math.min(this.#options.retentionMs, MAX_SWEEP_INTERVAL_MS)),
    );
  }

  /** Stops the periodic sweep. Running attempts' files stay (their writers close them). */
  async close(): Promise<void> {
    this.#clock.clearInterval(this.#sweepTimer);
    await this.#sweeping;
  }

  /** Creates (or empties) the attempt's two files; readers may attach from this call on. */
  open(taskId: string, attempt: number): Promise<AttemptLogs> {
    const prefix = filePrefix(taskId, attempt);
    const create = (stream: StreamName) =>
      StreamLog.create({
        path: `${this.#options.dir}/${prefix}.${stream}`,
        limit: this.#options.limit,
        log: this.#options.log,
      });
    const opening =
      (async () => ({ stdout: await create("stdout"), stderr: await create("stderr") }))();
    this.#live.set(prefix, opening);
    opening.catch(() => {
      if (this.#live.get(prefix) === opening) this.#live.delete(prefix);
    });
    this.#leaveQueue(prefix, opening);
    return opening;
  }

  /** The attempt waits in the worker's queue: followers wait for open() or withdraw(). */
  queue(taskId: string, attempt: number): void {
    const prefix = filePrefix(taskId, attempt);
    if (this.#queued.has(prefix)) return;
    let leave!: QueuedAttempt["leave"];
    const left = new Promise<Promise<AttemptLogs> | undefined>((resolve) => leave = resolve);
    this.#queued.set(prefix, { left, leave });
  }

  /** The queued attempt was given back unstarted: its followers end, with nothing. */
  withdraw(taskId: string, attempt: number): void {
    this.#leaveQueue(filePrefix(taskId, attempt), undefined);
  }

  #leaveQueue(prefix: string, logs: Promise<AttemptLogs> | undefined): void {
    const queued = this.#queued.get(prefix);
    if (!queued) return;
    this.#queued.delete(prefix);
    queued.leave(logs);
  }

  /** The attempt's output is complete: followers get their end, the files stay for reading. */
  async finish(taskId: string, attempt: number): Promise<void> {
    const prefix = filePrefix(taskId, attempt);
    const opening = this.#live.get(prefix);
    if (!opening) return;
    const logs = await opening;
    await Promise.all([logs.stdout.close(), logs.stderr.close()]);
    this.#live.delete(prefix);
  }

  /**
   * The last `limit` bytes of each stream of an attempt whose writer is gone (a previous life
   * of the worker ran it), for its report. Also removes what a rewrite cut short by the crash
   * left (the file before the rewrite is whole), so the files read as any ended attempt's.
   */
  async abandonedTails(taskId: string, attempt: number, limit: number): Promise<TaskOutput> {
    const path = (stream: StreamName) =>
      `${this.#options.dir}/${filePrefix(taskId, attempt)}.${stream}`;
    for (const stream of ["stdout", "stderr"] as const) {
      await Deno.remove(`${path(stream)}.tmp`).catch(() => {});
    }
    const stdout = await readLogTail(path("stdout"), limit);
    const stderr = await readLogTail(path("stderr"), limit);
    return {
      stdout: stdout.text,
      stderr: stderr.text,
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
    };
  }

  /**
   * Gives `reader` the stream's content and, with `follow` while the attempt runs, its new
   * output until it ends. Resolves to a function that detaches the reader, or to undefined
   * when this worker has no such log.
   */
  async attach(
    taskId: string,
    attempt: number,
    stream: StreamName,
    follow: boolean,
    reader: LogReader,
  ): Promise<(() => void) | undefined> {
    const prefix = filePrefix(taskId, attempt);
    const queued = this.#queued.get(prefix);
    if (queued) {
      const started = follow ? await queued.left : undefined;
      if (!started) {
        // Not started (yet), or given back: it has printed nothing.
        if (follow && reader.givenBack) reader.givenBack();
        else {
          reader.snapshot(new Uint8Array());
          reader.end();
        }
        return () => {};
      }
    }
    const live = await this.#live.get(prefix)?.catch(() => undefined);
    if (live) return await live[stream].attach(reader, follow);
    let data: Uint8Array;
    try {
      data = await Deno.readFile(`${this.#options.dir}/${prefix}.${stream}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    reader.snapshot(data);
    reader.end();
    return () => {};
  }

  /** Removes the files of ended attempts not written for log_retention; returns how many. */
  sweep(): Promise<number> {
    const run = this.#sweep().catch((e) => {
      this.#options.log.warn("cannot remove old task logs", { dir: this.#options.dir, cause: e });
      return 0;
    });
    this.#sweeping = run;
    return run;
  }

  async #sweep(): Promise<number> {
    const cutoff = this.#clock.now() - this.#options.retentionMs;
    let removed = 0;
    for await (const entry of Deno.readDir(this.#options.dir)) {
      if (!entry.isFile) continue;
      // A running attempt that has been quiet for long still needs its files.
      if (this.#live.has(entry.name.replace(/\.(stdout|stderr)(\.tmp)?$/, ""))) continue;
      const path = `${this.#options.dir}/${entry.name}`;
      try {
        const info = await Deno.stat(path);
        if ((info.mtime?.getTime() ?? 0) >= cutoff) continue;
        await Deno.remove(path);
        removed++;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    if (removed > 0) this.#options.log.debug("removed old task logs", { files: removed });
    return removed;
  }
}

/**
 * `<task_id>.<attempt>`, with any character of the id outside [A-Za-z0-9._-] written as %XX,
 * so that no id can name a path outside the folder.
 */
export function filePrefix(taskId: string, attempt: number): string {
  return `${taskId.replace(/[^A-Za-z0-9._-]/g, percentEncode)}.${attempt}`;
}

function percentEncode(character: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(character)) {
    out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
