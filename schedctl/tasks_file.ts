/**
 * The tasks file of `schedctl tasks schedule -f FILE`: read and checked entirely before
 * anything is sent, so a mistake anywhere means nothing is scheduled.
 *
 *     tasks:
 *       - cmd: sleep
 *         params: ["30"]
 *
 * Values are read as YAML's failsafe schema reads them: every scalar is text, exactly as
 * written. So `params: [30, 007, 1.50, true]` passes "30", "007", "1.50" and "true" and never
 * a reformatted number such as "7" or "1.5". Lists and mappings are refused where text is
 * expected.
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { TaskSpec } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { InputError } from "./errors.ts";
import { quoted } from "./format.ts";

/** At most this many problems are listed; the rest are counted. */
const MAX_PROBLEMS = 10;

const EXAMPLE = `e.g. tasks: [{cmd: sleep, params: ["30"]}]`;

const fileSchema = z.strictObject({ tasks: z.array(z.unknown()).min(1) });

const entrySchema = z.strictObject({
  cmd: z.string().min(1),
  params: z.array(z.string()).default([]),
});

/** One task to schedule, as the API's TaskSpec takes it. */
export type TaskSpecInit = Pick<TaskSpec, "cmd" | "params">;

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
    return `unknown key ${issue.keys.map(quoted).join(", ")} (a task has cmd and params)`;
  }
  const [field, index] = issue.path;
  const value = at(entry, issue.path);
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
    if (parsed.success) {
      specs.push(parsed.data);
      return;
    }
    // One line per field: a missing cmd is not also "cmd must be text".
    const seen = new Set<string>();
    for (const issue of parsed.error.issues) {
      const line = `${where}: ${describeEntryIssue(issue, entry)}`;
      if (!seen.has(line)) problems.push(line);
      seen.add(line);
    }
  });
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > MAX_PROBLEMS) {
      shown.push(`${source}: ... and ${problems.length - MAX_PROBLEMS} more problems`);
    }
    throw new InputError(shown.join("\n"));
  }
  return specs;
}
