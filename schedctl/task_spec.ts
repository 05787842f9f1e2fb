/**
 * The parts of a task spec that `tasks add` flags and the tasks file share: env, cwd,
 * timeout and kill_timeout, each checked the same way in both places. Pure; a bad value is a
 * SpecProblem whose message names it, and the caller says where it came from (a flag, or a
 * file and an entry).
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { TaskSpec } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { parseDuration } from "../shared/duration.ts";
import { quoted } from "./format.ts";

/** One task to schedule, as the API's TaskSpec takes it. Unset fields are left out. */
export type TaskSpecInit =
  & Pick<TaskSpec, "cmd" | "params">
  & Partial<Pick<TaskSpec, "env" | "cwd">>
  & { timeout?: Duration; killTimeout?: Duration };

/** A value that cannot go into a task spec; the message names the value. */
export class SpecProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SpecProblem";
  }
}

/** An environment variable name: not empty, no "=", no NUL. */
export function checkEnvName(name: string): void {
  if (name === "") throw new SpecProblem("the name is empty");
  if (name.includes("=")) throw new SpecProblem(`the name ${quoted(name)} contains "="`);
  if (name.includes("\0")) throw new SpecProblem(`the name ${quoted(name)} contains a NUL byte`);
}

/** An environment variable value: anything but NUL (a process cannot receive it). */
export function checkEnvValue(name: string, value: string): void {
  if (value.includes("\0")) {
    throw new SpecProblem(`the value of ${name} contains a NUL byte`);
  }
}

/**
 * Reads `--env KEY=VALUE`: split at the first "=", so the value may hold "=" and may be
 * empty (`--env EMPTY=`).
 */
export function parseEnvAssignment(text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq === -1) throw new SpecProblem(`${quoted(text)} is not KEY=VALUE`);
  const name = text.slice(0, eq);
  const value = text.slice(eq + 1);
  if (name === "") throw new SpecProblem(`${quoted(text)} has an empty name before "="`);
  checkEnvName(name);
  checkEnvValue(name, value);
  return [name, value];
}

/** A working directory: an absolute path (the worker's own directory means nothing here). */
export function checkCwd(cwd: string): string {
  if (!cwd.startsWith("/")) {
    throw new SpecProblem(`${quoted(cwd)} is not an absolute path: it must start with /`);
  }
  if (cwd.includes("\0")) throw new SpecProblem(`${quoted(cwd)} contains a NUL byte`);
  return cwd;
}

function durationProblem(e: unknown): SpecProblem {
  // parseDuration's message names the text already: `Invalid duration "-5s" (...): use ...`.
  const message = e instanceof Error ? e.message : String(e);
  return new SpecProblem(message.replace(/^Invalid duration/, "invalid duration"));
}

/** A run deadline: a duration above 0, such as 30s or 1h30m. */
export function parseTimeout(text: string): Duration {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (e) {
    throw durationProblem(e);
  }
  if (ms <= 0) {
    throw new SpecProblem(
      `${quoted(text)} must be longer than 0 (leave it out for no deadline)`,
    );
  }
  return durationFromMs(ms);
}

/** The grace between SIGTERM and SIGKILL: a duration, 0s meaning SIGKILL at once. */
export function parseKillTimeout(text: string): Duration {
  try {
    return durationFromMs(parseDuration(text));
  } catch (e) {
    throw durationProblem(e);
  }
}
