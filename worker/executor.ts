/**
 * Runs one task's process: the command with its params directly (no shell), stdin closed, a
 * minimal environment, in its own process group so that stopping it stops its children too.
 * stdout and stderr are each kept as a bounded tail for the report and handed, byte for byte,
 * to the task's log files. Spawning is behind an interface so that the worker's logic is
 * testable without processes.
 */
import type { Logger } from "../shared/log.ts";
import type { TaskOutput } from "../shared/task_machine.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { OutputTail } from "./output_tail.ts";
import {
  type GroupChild,
  setsidExecFailure,
  spawnInOwnGroup,
  type StartTimeRange,
} from "./spawn.ts";

export interface ProcessSpec {
  taskId: string;
  attempt: number;
  cmd: string;
  params: string[];
  /** Added on top of the base environment; may override PATH, HOME and LANG. */
  env?: Record<string, string>;
  /** Absolute working directory; empty or absent means "/". */
  cwd?: string;
  /** A deadline measured from the start; absent or 0 means none. */
  timeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL when the process is stopped; absent means 10 s. */
  killTimeoutMs?: number;
}

/** Why the worker stopped a process (absent from a result when it ran to its own end). */
export type Termination = "cancelled" | "deadline_exceeded" | "worker_stopping";

export type ProcessOutcome =
  | { kind: "exited"; exitCode: number; signal?: string }
  | { kind: "start_failed"; error: string }
  /** The worker lost track of the process: it restarted while the process ran. */
  | { kind: "abandoned"; reason: string }
  /** Never started: it waited in the worker's queue when it was cancelled or the worker stopped. */
  | { kind: "not_started"; reason: string };

export interface ProcessResult {
  outcome: ProcessOutcome;
  output: TaskOutput;
  startedAt: number;
  finishedAt: number;
  termination?: Termination;
}

/** The result of an attempt given back unstarted (see ProcessOutcome): it printed nothing. */
export function notStartedResult(
  reason: string,
  at: number,
  termination?: Termination,
): ProcessResult {
  return {
    outcome: { kind: "not_started", reason },
    output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
    startedAt: at,
    finishedAt: at,
    ...(termination ? { termination } : {}),
  };
}

/** Receives a stream's bytes as the process writes them (the task's log file). Never rejects. */
export interface OutputSink {
  write(chunk: Uint8Array): Promise<void>;
}

export interface OutputSinks {
  stdout?: OutputSink;
  stderr?: OutputSink;
}

/** A process that exists: its id, which is also its process group's. */
export interface Spawned {
  pid: number;
  /** When the attempt started (the executor's clock), as its result will say. */
  startedAt: number;
  /** The process's start time as /proc counts it, where the spawn tells it. */
  startTime?: StartTimeRange;
}

export interface RunningProcess {
  /** Settles once the process exists, or with undefined when it could not start. */
  readonly spawned: Promise<Spawned | undefined>;
  /** Settles once the process has ended and its output is drained. */
  readonly result: Promise<ProcessResult>;
  /**
   * Stops the process group: SIGTERM, then SIGKILL after the kill timeout if the main process
   * is still there. The first call decides the termination; later calls change nothing, nor
   * does a call after the process has ended.
   */
  stop(termination: Termination): void;
}

export interface Executor {
  start(spec: ProcessSpec, output?: OutputSinks): RunningProcess;
}

export interface ProcessExecutorOptions {
  /** Bytes of each output stream kept for the report (the tail). */
  outputLimit: number;
  /** Given to every task as GO_SCHEDULE_WORKER_ID. */
  workerId: string;
  /** HOME of the tasks; by default the worker's own HOME, else "/". */
  home?: string;
  /** Time and timers (deadlines, kill grace); injected in tests. */
  clock?: Clock;
  log?: Logger;
}

/** The default grace between SIGTERM and SIGKILL. */
export const DEFAULT_KILL_TIMEOUT_MS = 10_000;

/**
 * How long the output pipes may stay open after the main process ended and its group was
 * killed. Only a process that left the group (setsid) can hold them longer; its output after
 * that is not waited for, so that such a process cannot keep the task from being reported.
 */
export const PIPE_CLOSE_GRACE_MS = 2_000;

/** The PATH a task gets unless its env sets one. */
export const BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * A task's environment: a minimal base (nothing of the worker's own environment leaks in),
 * the task's env on top, and the variables naming the attempt, which the task cannot override.
 */
export function taskEnvironment(
  spec: Pick<ProcessSpec, "taskId" | "attempt" | "env">,
  workerId: string,
  home: string,
): Record<string, string> {
  return {
    PATH: BASE_PATH,
    HOME: home,
    LANG: "C.UTF-8",
    ...spec.env,
    GO_SCHEDULE_TASK_ID: spec.taskId,
    GO_SCHEDULE_ATTEMPT: String(spec.attempt),
    GO_SCHEDULE_WORKER_ID: workerId,
  };
}

export function createProcessExecutor(options: ProcessExecutorOptions): Executor {
  return { start: (spec, output = {}) => new ProcessRun(options, spec, output) };
}

class ProcessRun implements RunningProcess {
  readonly result: Promise<ProcessResult>;
  readonly spawned: Promise<Spawned | undefined>;
  #resolveSpawned!: (spawned: Spawned | undefined) => void;
  readonly #options: ProcessExecutorOptions;
  readonly #spec: ProcessSpec;
  readonly #clock: Clock;
  /** Set by the first stop (or the deadline). */
  #termination: Termination | undefined;
  /** Signals the process group once there is one; undefined before the spawn and after exit. */
  #signalGroup: ((signal: Deno.Signal) => void) | undefined;
  #killTimer: unknown;
  #ended = false;

  constructor(options: ProcessExecutorOptions, spec: ProcessSpec, output: OutputSinks) {
    this.#options = options;
    this.#spec = spec;
    this.#clock = options.clock ?? systemClock;
    this.spawned = new Promise((resolve) => this.#resolveSpawned = resolve);
    this.result = this.#run(spec, output);
    // Whatever happened, nobody waits for a spawn forever (a second resolve changes nothing).
    this.result.finally(() => this.#resolveSpawned(undefined)).catch(() => {});
  }

  stop(termination: Termination): void {
    if (this.#termination !== undefined || this.#ended) return;
    this.#termination = termination;
    // Before the spawn, #run starts the stop sequence as soon as the group exists.
    if (this.#signalGroup) this.#beginStop();
  }

  #beginStop(): void {
    const signalGroup = this.#signalGroup;
    if (!signalGroup) return;
    signalGroup("SIGTERM");
    this.#killTimer = this.#clock.setTimeout(
      () => this.#signalGroup?.("SIGKILL"),
      this.#spec.killTimeoutMs ?? DEFAULT_KILL_TIMEOUT_MS,
    );
  }

  async #run(spec: ProcessSpec, output: OutputSinks): Promise<ProcessResult> {
    const clock = this.#clock;
    const startedAt = clock.now();
    const cwd = spec.cwd || "/";
    const failed = (error: string): ProcessResult => {
      this.#ended = true;
      return {
        outcome: { kind: "start_failed", error },
        output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
        startedAt,
        finishedAt: clock.now(),
      };
    };
    // Deno's spawn error says "not found" for a missing cwd and a missing command alike.
    const cwdProblem = checkWorkingDirectory(cwd);
    if (cwdProblem) return failed(cwdProblem);

    let child: GroupChild;
    try {
      // Its own session and process group (pgid = pid): the group is what we signal.
      child = spawnInOwnGroup(spec.cmd, {
        args: spec.params,
        cwd,
        env: taskEnvironment(
          spec,
          this.#options.workerId,
          this.#options.home ?? (Deno.env.get("HOME") || "/"),
        ),
        stdout: "piped",
        stderr: "piped",
      });
    } catch (e) {
      return failed(describeSpawnError(spec.cmd, e));
    }

    const group = child.pid;
    this.#resolveSpawned({ pid: group, startedAt, startTime: child.startTime });
    this.#signalGroup = child.signalGroup ?? ((signal) => {
      try {
        Deno.kill(-group, signal);
      } catch {
        // The group is already empty.
      }
    });
    const stdoutTail = new OutputTail(this.#options.outputLimit);
    const stderrTail = new OutputTail(this.#options.outputLimit);
    const pumps = [
      pump(child.stdout, stdoutTail, output.stdout),
      pump(child.stderr, stderrTail, output.stderr),
    ];
    if (this.#termination !== undefined) this.#beginStop();
    const deadline = spec.timeoutMs
      ? clock.setTimeout(() => this.stop("deadline_exceeded"), spec.timeoutMs)
      : undefined;

    const status = await child.status;
    this.#ended = true;
    clock.clearTimeout(deadline);
    clock.clearTimeout(this.#killTimer);
    // No leftovers: what the main process left running in its group goes with it. The group
    // cannot have been reused yet: its id stays taken while any member, even a zombie, exists.
    this.#signalGroup("SIGKILL");
    this.#signalGroup = undefined;

    let graceTimer: unknown;
    const pipesClosed = await Promise.race([
      Promise.all(pumps.map((p) => p.done)).then(() => true),
      new Promise<false>((resolve) => {
        graceTimer = clock.setTimeout(() => resolve(false), PIPE_CLOSE_GRACE_MS);
      }),
    ]);
    clock.clearTimeout(graceTimer);
    if (!pipesClosed) {
      this.#options.log?.warn(
        "a process that left the task's process group still holds its output; not waiting for it",
        { task: spec.taskId, attempt: spec.attempt },
      );
      await Promise.all(pumps.map((p) => p.cancel()));
    }

    const execError = status.code === 127 && !status.signal
      ? setsidExecFailure(spec.cmd, stderrTail.text())
      : undefined;
    if (execError !== undefined) return failed(execError);
    const result: ProcessResult = {
      outcome: status.signal
        ? { kind: "exited", exitCode: status.code, signal: status.signal }
        : { kind: "exited", exitCode: status.code },
      output: {
        stdout: stdoutTail.text(),
        stderr: stderrTail.text(),
        stdoutTruncated: stdoutTail.truncated,
        stderrTruncated: stderrTail.truncated,
      },
      startedAt,
      finishedAt: clock.now(),
    };
    if (this.#termination !== undefined) result.termination = this.#termination;
    return result;
  }
}

/** Reads a pipe into the report's tail and the log sink, as bytes (binary data stays intact). */
function pump(
  stream: ReadableStream<Uint8Array>,
  tail: OutputTail,
  sink: OutputSink | undefined,
): { done: Promise<void>; cancel: () => Promise<void> } {
  const reader = stream.getReader();
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        tail.write(value);
        await sink?.write(value);
      }
    } catch {
      // Cancelled, or the pipe broke: what was read is kept.
    }
    // The lock is not released: nothing else reads the stream, and releasing the lock of an
    // ended stream builds a TypeError for its `closed` promise, on every task.
  })();
  return {
    done,
    cancel: async () => {
      await reader.cancel().catch(() => {});
      await done;
    },
  };
}

/** Says why `cwd` cannot be a task's working directory, or nothing when it can. */
export function checkWorkingDirectory(cwd: string): string | undefined {
  const name = JSON.stringify(cwd);
  if (!cwd.startsWith("/")) return `working directory ${name} is not an absolute path`;
  try {
    // Synchronous, like the worker's other per-task file calls (see journal_file.ts).
    const info = Deno.statSync(cwd);
    if (!info.isDirectory) return `working directory ${name} is not a directory`;
    return undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return `no such working directory ${name}`;
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      return `working directory ${name}: permission denied`;
    }
    return `working directory ${name}: ${(e as Error).message}`;
  }
}

/** Says in plain words why a command could not start, naming it. */
export function describeSpawnError(cmd: string, error: unknown): string {
  const name = JSON.stringify(cmd);
  if (error instanceof Deno.errors.NotFound) return `${name}: no such file or directory`;
  if (error instanceof Deno.errors.PermissionDenied) return `${name}: permission denied`;
  return `${name}: ${(error as Error).message}`;
}
