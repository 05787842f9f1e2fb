/**
 * The parts of a task spec that `tasks add` flags and the tasks file share: env, cwd,
 * timeout, kill_timeout and the retry settings, each checked the same way in both places. Pure; a bad value is a
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
  & Partial<Pick<TaskSpec, "env" | "cwd" | "retries" | "retryOnFailure">>
  & { timeout?: Duration; killTimeout?: Duration; retryBackoff?: Duration };

/** The most retries the manager accepts for one task. */
export const MAX_RETRIES = 100;

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

/** How many more times to place a task whose attempt failed: a whole number 0..100. */
export function parseRetries(text: string): number {
  if (!/^\d+$/.test(text)) {
    throw new SpecProblem(
      `${quoted(text)} is not a whole number from 0 to ${MAX_RETRIES}, e.g. 3`,
    );
  }
  const n = Number(text);
  if (n > MAX_RETRIES) {
    throw new SpecProblem(
      `${quoted(text)} is more than the maximum of ${MAX_RETRIES} (the manager refuses more)`,
    );
  }
  return n;
}

/** The wait before the first retry (doubling for each further one): a duration, 0s allowed. */
export function parseRetryBackoff(text: string): Duration {
  return parseKillTimeout(text);
}

/**
 * A yes/no value of the tasks file, which reads every scalar as text (YAML's failsafe
 * schema): true or false, as YAML 1.2 spells them (also True, TRUE, False, FALSE).
 */
export function parseBoolean(text: string): boolean {
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  throw new SpecProblem(`${quoted(text)} is not true or false`);
}

/**
 * Retry settings without `retries` mean nothing (the task gets no retry): refused, so that a
 * forgotten `retries` does not pass unnoticed. Returns the message naming them, or undefined.
 */
export function retrySettingsWithoutRetries(
  spec: Pick<TaskSpecInit, "retries" | "retryBackoff" | "retryOnFailure">,
  names: { retries: string; backoff: string; onFailure: string; example: string },
): string | undefined {
  if (spec.retries !== undefined) return undefined;
  const given = [
    spec.retryBackoff === undefined ? undefined : names.backoff,
    spec.retryOnFailure ? names.onFailure : undefined,
  ].filter((n) => n !== undefined);
  if (given.length === 0) return undefined;
  const verb = given.length === 1 ? "applies" : "apply";
  return `${given.join(" and ")} only ${verb} with ${names.retries} (how many times to retry), ` +
    `e.g. ${names.example}`;
}
