/**
 * Runs one task's process: the command with its params directly (no shell), stdin closed,
 * stdout and stderr each kept as a bounded tail. Spawning is behind an interface so that the
 * worker's logic is testable without processes.
 */
import type { TaskOutput } from "../shared/task_machine.ts";
import { drainInto, OutputTail } from "./output_tail.ts";

export interface ProcessSpec {
  cmd: string;
  params: string[];
}

export type ProcessOutcome =
  | { kind: "exited"; exitCode: number; signal?: string }
  | { kind: "start_failed"; error: string };

export interface ProcessResult {
  outcome: ProcessOutcome;
  output: TaskOutput;
  startedAt: number;
  finishedAt: number;
}

export interface Executor {
  /** Runs the process to its end; aborting `signal` kills it (SIGTERM). */
  run(spec: ProcessSpec, signal: AbortSignal): Promise<ProcessResult>;
}

export interface ProcessExecutorOptions {
  /** Bytes of each output stream kept (the tail). */
  outputLimit: number;
  now?: () => number;
}

export function createProcessExecutor(options: ProcessExecutorOptions): Executor {
  const now = options.now ?? Date.now;
  return {
    async run(spec, signal) {
      const startedAt = now();
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(spec.cmd, {
          args: spec.params,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal,
        }).spawn();
      } catch (e) {
        return {
          outcome: { kind: "start_failed", error: describeSpawnError(spec.cmd, e) },
          output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
          startedAt,
          finishedAt: now(),
        };
      }
      const stdout = new OutputTail(options.outputLimit);
      const stderr = new OutputTail(options.outputLimit);
      const [status] = await Promise.all([
        child.status,
        drainInto(child.stdout, stdout),
        drainInto(child.stderr, stderr),
      ]);
      return {
        outcome: status.signal
          ? { kind: "exited", exitCode: status.code, signal: status.signal }
          : { kind: "exited", exitCode: status.code },
        output: {
          stdout: stdout.text(),
          stderr: stderr.text(),
          stdoutTruncated: stdout.truncated,
          stderrTruncated: stderr.truncated,
        },
        startedAt,
        finishedAt: now(),
      };
    },
  };
}

/** Says in plain words why a command could not start, naming it. */
export function describeSpawnError(cmd: string, error: unknown): string {
  const name = JSON.stringify(cmd);
  if (error instanceof Deno.errors.NotFound) return `${name}: no such file or directory`;
  if (error instanceof Deno.errors.PermissionDenied) return `${name}: permission denied`;
  return `${name}: ${(error as Error).message}`;
}
