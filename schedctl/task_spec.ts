/**
 * The parts of a task spec that `tasks add` flags and the tasks file share: env, cwd,
 * timeout, kill_timeout, the retry settings and the placement requests (cpu, memory, labels,
 * worker, priority, schedule_timeout, queue), each checked the same way in both places. Pure;
 * a bad value is a SpecProblem whose message names it, and the caller says where it came from
 * (a flag, or a file and an entry).
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  type LabelConstraint,
  LabelConstraint_Op,
  type TaskSpec,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { parseDuration } from "../shared/duration.ts";
import { parseSize } from "../shared/size.ts";
// The label syntax is the worker's (worker.yaml labels); one definition for both sides.
import { labelKeyProblem, labelValueProblem } from "../shared/labels.ts";
import { formatLabelConstraint, quoted } from "./format.ts";

/** One label requirement as the API takes it: key=value, key!=value or key (present). */
export type LabelConstraintInit = Pick<LabelConstraint, "key" | "op" | "value">;

/** One task to schedule, as the API's TaskSpec takes it. Unset fields are left out. */
export type TaskSpecInit =
  & Pick<TaskSpec, "cmd" | "params">
  & Partial<
    Pick<
      TaskSpec,
      | "env"
      | "cwd"
      | "retries"
      | "retryOnFailure"
      | "cpu"
      | "memoryBytes"
      | "workerId"
      | "priority"
      | "queue"
    >
  >
  & {
    timeout?: Duration;
    killTimeout?: Duration;
    retryBackoff?: Duration;
    scheduleTimeout?: Duration;
    labels?: LabelConstraintInit[];
  };

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
  return positiveDuration(text, "leave it out for no deadline");
}

/** A duration above 0; `leaveOut` says what omitting it means instead. */
function positiveDuration(text: string, leaveOut: string): Duration {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (e) {
    throw durationProblem(e);
  }
  if (ms <= 0) throw new SpecProblem(`${quoted(text)} must be longer than 0 (${leaveOut})`);
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

/** Cores a task needs: a number above 0, fractions allowed (0.5, 2, 1.25). */
export function parseCpu(text: string): number {
  const n = /^(?:\d+(?:\.\d+)?|\.\d+)$/.test(text) ? Number(text) : NaN;
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new SpecProblem(
      `${quoted(text)} is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`,
    );
  }
  return n;
}

/** Memory a task needs: a size above 0 (512MiB, 2GiB, 1000000). */
export function parseMemory(text: string): bigint {
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new SpecProblem(
      message.replace(/^Invalid size/, "invalid size").replace(
        /e\.g\. 64KiB$/,
        "e.g. 512MiB or 2GiB",
      ),
    );
  }
  if (!Number.isSafeInteger(bytes)) throw new SpecProblem(`${quoted(text)} is too large`);
  if (bytes <= 0) {
    throw new SpecProblem(`${quoted(text)} must be more than 0 bytes (leave it out for none)`);
  }
  return BigInt(bytes);
}

/** The forms of a label expression, for messages. */
const LABEL_FORMS = "use key=value, key!=value or key (the worker has the label)";

/**
 * A label requirement: `key=value` (the worker's label key has this value), `key!=value` (it
 * has not), or `key` (the worker has the label, whatever its value). Keys and values are
 * spelt as worker labels are (see worker/labels.ts); a value may be empty (`key=`).
 */
export function parseLabelExpression(text: string): LabelConstraintInit {
  if (text === "") throw new SpecProblem(`the expression is empty: ${LABEL_FORMS}`);
  const notEqual = text.indexOf("!=");
  const equal = text.indexOf("=");
  let constraint: LabelConstraintInit;
  if (notEqual !== -1 && notEqual < equal) {
    constraint = {
      key: text.slice(0, notEqual),
      op: LabelConstraint_Op.NOT_EQUAL,
      value: text.slice(notEqual + 2),
    };
  } else if (equal !== -1) {
    constraint = {
      key: text.slice(0, equal),
      op: LabelConstraint_Op.EQUAL,
      value: text.slice(equal + 1),
    };
  } else {
    constraint = { key: text, op: LabelConstraint_Op.EXISTS, value: "" };
  }
  if (constraint.key === "") {
    throw new SpecProblem(`${quoted(text)} has no label key: ${LABEL_FORMS}`);
  }
  const problem = labelKeyProblem(constraint.key) ??
    labelValueProblem(constraint.key, constraint.value);
  if (problem !== undefined) throw new SpecProblem(`${quoted(text)}: ${problem}`);
  return constraint;
}

/**
 * The label requirements of one task, repeats dropped; requirements that cannot all hold
 * (gpu=true and gpu=false, or zone=a and zone!=a) are refused: no worker could ever match.
 */
export function checkLabelConstraints(
  constraints: readonly LabelConstraintInit[],
): LabelConstraintInit[] {
  const kept: LabelConstraintInit[] = [];
  const seen = new Set<string>();
  for (const c of constraints) {
    const text = formatLabelConstraint(c);
    if (seen.has(text)) continue;
    seen.add(text);
    const clash = kept.find((k) =>
      k.key === c.key && (
        (k.op === LabelConstraint_Op.EQUAL && c.op === LabelConstraint_Op.EQUAL) ||
        (k.op !== c.op && k.value === c.value &&
          k.op !== LabelConstraint_Op.EXISTS && c.op !== LabelConstraint_Op.EXISTS)
      )
    );
    if (clash !== undefined) {
      throw new SpecProblem(
        `${formatLabelConstraint(clash)} and ${text} cannot both hold: no worker could match`,
      );
    }
    kept.push(c);
  }
  return kept;
}

/** Worker ids as workers choose them: 1 to 63 letters, digits, ".", "_" or "-". */
const WORKER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** The worker a task must run on: a worker id (see `schedctl workers ls`). */
export function checkWorkerId(id: string): string {
  if (id === "") throw new SpecProblem("the worker id is empty");
  if (!WORKER_ID.test(id)) {
    throw new SpecProblem(
      `${quoted(id)} is not a worker id: 1 to 63 letters, digits, ".", "_" or "-" ` +
        "(see 'schedctl workers ls')",
    );
  }
  return id;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** A task's priority: a whole number, negative allowed; higher is placed first. */
export function parsePriority(text: string): number {
  if (!/^[+-]?\d+$/.test(text)) {
    throw new SpecProblem(
      `${quoted(text)} is not a whole number, e.g. 10 or -5 (higher is placed first)`,
    );
  }
  const n = Number(text);
  if (n < INT32_MIN || n > INT32_MAX) {
    throw new SpecProblem(`${quoted(text)} is out of range: use ${INT32_MIN} to ${INT32_MAX}`);
  }
  return n === 0 ? 0 : n; // Not -0.
}

/** How long a task may wait to be placed before it is dead: a duration above 0. */
export function parseScheduleTimeout(text: string): Duration {
  return positiveDuration(text, "leave it out for the manager's schedule_timeout");
}
