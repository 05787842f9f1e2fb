/**
 * The tasks file of `schedctl tasks schedule -f FILE`: read and checked entirely before
 * anything is sent, so a mistake anywhere means nothing is scheduled.
 *
 *     tasks:
 *       - cmd: sleep
 *         params: ["30"]
 *         env: {GREETING: hi}      # optional, like --env
 *         cwd: /tmp                # optional, like --cwd: an absolute path
 *         timeout: 30s             # optional, like --timeout
 *         kill_timeout: 5s         # optional, like --kill-timeout
 *         retries: 3               # optional, like --retries: 0 to 100
 *         retry_backoff: 2s        # optional, like --retry-backoff (needs retries)
 *         retry_on_failure: true   # optional, like --retry-on-failure (needs retries)
 *         cpu: 0.5                 # optional, like --cpu
 *         memory: 512MiB           # optional, like --memory
 *         labels: ["gpu=true", "zone!=b", "ssd"]   # optional, like --label
 *         worker: w-1              # optional, like --worker
 *         priority: -5             # optional, like --priority
 *         schedule_timeout: 10m    # optional, like --schedule-timeout
 *         queue: true              # optional, like --queue
 *
 * Values are read as YAML's failsafe schema reads them: every scalar is text, exactly as
 * written. So `params: [30, 007, 1.50, true]` passes "30", "007", "1.50" and "true" and never
 * a reformatted number such as "7" or "1.5". Lists and mappings are refused where text is
 * expected.
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { InputError } from "./errors.ts";
import { quoted } from "./format.ts";
import {
  checkCwd,
  checkEnvName,
  checkEnvValue,
  checkLabelConstraints,
  checkWorkerId,
  type LabelConstraintInit,
  parseBoolean,
  parseCpu,
  parseKillTimeout,
  parseLabelExpression,
  parseMemory,
  parsePriority,
  parseRetries,
  parseRetryBackoff,
  parseScheduleTimeout,
  parseTimeout,
  retrySettingsWithoutRetries,
  SpecProblem,
  type TaskSpecInit,
} from "./task_spec.ts";

export type { TaskSpecInit } from "./task_spec.ts";

/** At most this many problems are listed; the rest are counted. */
const MAX_PROBLEMS = 10;

const EXAMPLE = `e.g. tasks: [{cmd: sleep, params: ["30"]}]`;

const fileSchema = z.strictObject({ tasks: z.array(z.unknown()).min(1) });

const entrySchema = z.strictObject({
  cmd: z.string().min(1),
  params: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().optional(),
  timeout: z.string().optional(),
  kill_timeout: z.string().optional(),
  retries: z.string().optional(),
  retry_backoff: z.string().optional(),
  retry_on_failure: z.string().optional(),
  cpu: z.string().optional(),
  memory: z.string().optional(),
  labels: z.array(z.string()).optional(),
  worker: z.string().optional(),
  priority: z.string().optional(),
  schedule_timeout: z.string().optional(),
  queue: z.string().optional(),
});

const ENTRY_KEYS = "cmd, params, env, cwd, timeout, kill_timeout, retries, retry_backoff, " +
  "retry_on_failure, cpu, memory, labels, worker, priority, schedule_timeout and queue";

const LABELS_EXAMPLE = 'e.g. labels: ["gpu=true", "zone!=b", "ssd"]';

/** The entry fields read by checkValues, rather than taken from zod's result. */
const CHECKED_FIELDS = [
  "cwd",
  "timeout",
  "kill_timeout",
  "retries",
  "retry_backoff",
  "retry_on_failure",
  "cpu",
  "memory",
  "worker",
  "priority",
  "schedule_timeout",
  "queue",
];

function kind(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return "text";
}

function at(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function describeFileIssue(issue: z.core.$ZodIssue, data: unknown): string {
  if (issue.code === "unrecognized_keys") {
    return `unknown key ${issue.keys.map(quoted).join(", ")} (the file has one key: tasks)`;
  }
  const tasks = at(data, ["tasks"]);
  if (tasks === undefined) return `tasks is required: expected a list of tasks, ${EXAMPLE}`;
  if (issue.code === "too_small") return "tasks is empty: nothing to schedule";
  return `tasks must be a list of tasks, not ${kind(tasks)}, ${EXAMPLE}`;
}

function describeEntryIssue(issue: z.core.$ZodIssue, entry: unknown): string {
  if (issue.code === "unrecognized_keys") {
    return `unknown key ${issue.keys.map(quoted).join(", ")} (a task has ${ENTRY_KEYS})`;
  }
  const [field, index] = issue.path;
  const value = at(entry, issue.path);
  if (field === "env" && index === undefined) {
    return `env must be a mapping of names to texts, not ${kind(value)}, e.g. env: {GREETING: hi}`;
  }
  if (field === "env") return `env ${String(index)} must be text, not ${kind(value)}`;
  if (field === "labels" && index === undefined) {
    return `labels must be a list of label expressions, not ${kind(value)}, ${LABELS_EXAMPLE}`;
  }
  if (field === "labels") {
    return `labels item ${Number(index) + 1} must be text, not ${kind(value)}`;
  }
  if (typeof field === "string" && CHECKED_FIELDS.includes(field)) {
    return `${field} must be text, not ${kind(value)}`;
  }
  if (field === "cmd") {
    if (value === undefined) return "cmd is required";
    if (issue.code === "too_small") return "cmd is empty";
    return `cmd must be text, not ${kind(value)}`;
  }
  if (field === "params" && index === undefined) {
    return `params must be a list of texts, not ${kind(value)}, e.g. params: ["-la", "/tmp"]`;
  }
  if (field === "params") {
    return `params item ${Number(index) + 1} must be text, not ${kind(value)}`;
  }
  return issue.message;
}

/** The fields checkValues reads. */
type CheckedValues = Pick<
  TaskSpecInit,
  | "cwd"
  | "timeout"
  | "killTimeout"
  | "retries"
  | "retryBackoff"
  | "retryOnFailure"
  | "cpu"
  | "memoryBytes"
  | "labels"
  | "workerId"
  | "priority"
  | "scheduleTimeout"
  | "queue"
>;

/**
 * Checks the values zod cannot: env names and values, cwd, timeout, kill_timeout, the
 * retry settings and the placement requests. Works on the raw entry, so these problems are listed along with the ones of
 * its shape; a field of the wrong shape is skipped here (zod names it). Returns the values
 * read, by field.
 */
function checkValues(
  entry: Record<string, unknown>,
  report: (problem: string) => void,
): CheckedValues {
  const values: CheckedValues = {};
  const check = (field: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof SpecProblem)) throw e;
      report(`${field}: ${e.message}`);
    }
  };
  const { env, cwd, timeout, kill_timeout: killTimeout } = entry;
  const { retries, retry_backoff: backoff, retry_on_failure: onFailure } = entry;
  if (env !== null && typeof env === "object" && !Array.isArray(env)) {
    for (const [name, value] of Object.entries(env)) {
      check("env", () => {
        checkEnvName(name);
        if (typeof value === "string") checkEnvValue(name, value);
      });
    }
  }
  if (typeof cwd === "string") check("cwd", () => values.cwd = checkCwd(cwd));
  if (typeof timeout === "string") check("timeout", () => values.timeout = parseTimeout(timeout));
  if (typeof killTimeout === "string") {
    check("kill_timeout", () => values.killTimeout = parseKillTimeout(killTimeout));
  }
  if (typeof retries === "string") check("retries", () => values.retries = parseRetries(retries));
  if (typeof backoff === "string") {
    check("retry_backoff", () => values.retryBackoff = parseRetryBackoff(backoff));
  }
  if (typeof onFailure === "string") {
    check("retry_on_failure", () => values.retryOnFailure = parseBoolean(onFailure));
  }
  const { cpu, memory, labels, worker, priority } = entry;
  const { schedule_timeout: scheduleTimeout, queue } = entry;
  if (typeof cpu === "string") check("cpu", () => values.cpu = parseCpu(cpu));
  if (typeof memory === "string") check("memory", () => values.memoryBytes = parseMemory(memory));
  if (Array.isArray(labels)) {
    const parsed: LabelConstraintInit[] = [];
    let bad = false;
    for (const item of labels) {
      if (typeof item !== "string") continue; // zod names it.
      check("labels", () => {
        try {
          parsed.push(parseLabelExpression(item));
        } catch (e) {
          bad = true;
          throw e;
        }
      });
    }
    if (!bad) check("labels", () => values.labels = checkLabelConstraints(parsed));
  }
  if (typeof worker === "string") check("worker", () => values.workerId = checkWorkerId(worker));
  if (typeof priority === "string") {
    check("priority", () => values.priority = parsePriority(priority));
  }
  if (typeof scheduleTimeout === "string") {
    check("schedule_timeout", () => values.scheduleTimeout = parseScheduleTimeout(scheduleTimeout));
  }
  if (typeof queue === "string") check("queue", () => values.queue = parseBoolean(queue));
  // Only when retries is not there at all: a bad retries value is reported on its own.
  const orphan = retries === undefined
    ? retrySettingsWithoutRetries(values, {
      retries: "retries",
      backoff: "retry_backoff",
      onFailure: "retry_on_failure",
      example: "retries: 3",
    })
    : undefined;
  if (orphan !== undefined) report(orphan);
  return values;
}

/**
 * Reads and checks a tasks file. `source` names it in messages ("tasks.yaml", "stdin").
 * Throws an InputError with one line per problem, each naming the file and the task
 * ("tasks.yaml: task 3: cmd is required").
 */
export function parseTasksFile(text: string, source: string): TaskSpecInit[] {
  let data: unknown;
  try {
    data = parseYaml(text, { schema: "failsafe", logLevel: "error" });
  } catch (e) {
    const first = (e as Error).message.split("\n")[0].replace(/:$/, "");
    throw new InputError(`${source}: not valid YAML: ${first}`);
  }
  if (data === null || data === undefined || data === "") {
    throw new InputError(`${source}: no tasks: the file is empty; ${EXAMPLE}`);
  }
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new InputError(
      `${source}: expected a mapping with a "tasks" list at the top, not ${kind(data)}; ${EXAMPLE}`,
    );
  }
  const file = fileSchema.safeParse(data);
  if (!file.success) {
    const issue = file.error.issues.find((i) => i.code === "unrecognized_keys") ??
      file.error.issues[0];
    throw new InputError(`${source}: ${describeFileIssue(issue, data)}`);
  }
  const specs: TaskSpecInit[] = [];
  const problems: string[] = [];
  file.data.tasks.forEach((entry, i) => {
    const where = `${source}: task ${i + 1}`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      problems.push(`${where}: expected a mapping with cmd and params, not ${kind(entry)}`);
      return;
    }
    const parsed = entrySchema.safeParse(entry);
    const before = problems.length;
    if (!parsed.success) {
      // One line per field: a missing cmd is not also "cmd must be text".
      const seen = new Set<string>();
      for (const issue of parsed.error.issues) {
        const line = `${where}: ${describeEntryIssue(issue, entry)}`;
        if (!seen.has(line)) problems.push(line);
        seen.add(line);
      }
    }
    const values = checkValues(
      entry as Record<string, unknown>,
      (problem) => problems.push(`${where}: ${problem}`),
    );
    if (!parsed.success || problems.length > before) return;
    const { cmd, params, env } = parsed.data;
    specs.push({ cmd, params, ...(env === undefined ? {} : { env }), ...values });
  });
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > MAX_PROBLEMS) {
      const more = problems.length - MAX_PROBLEMS;
      shown.push(`${source}: ... and ${more} more ${more === 1 ? "problem" : "problems"}`);
    }
    throw new InputError(shown.join("\n"));
  }
  return specs;
}
