/** `schedctl tasks`: list, show, and schedule tasks. */
import { toJson } from "@bufbuild/protobuf";
import { type Task, TaskSchema, TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { parseCommandArgs } from "./args.ts";
import {
  type CommandContext,
  type Invocation,
  JSON_OPTIONS,
  printJson,
  type Target,
} from "./command.ts";
import { InputError, UsageError } from "./errors.ts";
import {
  formatAgo,
  formatBytes,
  formatCommand,
  formatExit,
  formatTime,
  quoted,
  TASK_STATE_BY_NAME,
  taskStateName,
  visible,
} from "./format.ts";
import { formatTable } from "./table.ts";
import { parseTasksFile, type TaskSpecInit } from "./tasks_file.ts";

/** `tasks ls` without --limit or --all shows this many tasks. */
export const DEFAULT_LIST_LIMIT = 100;
/** The largest page the manager hands out. */
const MAX_PAGE_SIZE = 1000;
/** The COMMAND column is cut at this many terminal columns. */
const COMMAND_WIDTH = 60;

const HELP = `Usage: schedctl [-c FILE] [-v] [-o table|json] tasks COMMAND [ARGS]

Commands:
  ls [--state STATE] [--limit N] [--all]
      List tasks, oldest first: ID, STATE, WORKER, EXIT (exit code, or the signal that
      ended the process), CREATED, COMMAND (shell-quoted, cut at ${COMMAND_WIDTH} columns).
      Without --limit or --all, shows the first ${DEFAULT_LIST_LIMIT} and says on stderr when there are more.
        --state STATE   only tasks in this state: pending, scheduled, done or dead
        --limit N       show the first N tasks
        --all           show every task
      With -o json: a JSON array of the Task objects.

  get ID
      Show every field of one task as "Key: value" lines, then its stdout and stderr.
      With -o json: the Task object.

  schedule -f FILE
      Schedule every task of a YAML file ("-f -" reads stdin) and print the new ids, one
      per line. The whole file is checked first: if any entry is wrong, nothing is sent.
      All or nothing on the manager too: either every task is stored, or none is.
        tasks:
          - cmd: sleep
            params: ["30"]
          - cmd: ls
            params: [-la, /tmp]
      Values are taken as written: params: [30, 007] passes "30" and "007".
        -f, --file FILE   the tasks file
      With -o json: a JSON array of the created Task objects, in file order.

  add [--] CMD [PARAMS...]
      Schedule one task and print its id. Everything after CMD is passed to it unchanged,
      so 'schedctl tasks add ls -la' needs no '--'; put '--' before a CMD that starts
      with '-'. With -o json: the created Task object.

  help
      Print this text.
`;

const LIST_COLUMNS = [
  { header: "ID" },
  { header: "STATE" },
  { header: "WORKER" },
  { header: "EXIT" },
  { header: "CREATED" },
  { header: "COMMAND", maxWidth: COMMAND_WIDTH },
];

/** What `tasks ls` lists. */
interface ListRequest {
  /** TaskState.UNSPECIFIED lists every state. */
  state: TaskState;
  /** At most this many; undefined for all. */
  limit: number | undefined;
  /** True when the limit is the default one, not --limit. */
  defaultLimit: boolean;
}

async function listTasks(context: CommandContext, request: ListRequest): Promise<number> {
  const { limit } = request;
  const tasks: Task[] = [];
  let pageToken = "";
  let more = false;
  for (;;) {
    const pageSize = Math.min(
      MAX_PAGE_SIZE,
      limit === undefined ? MAX_PAGE_SIZE : limit - tasks.length,
    );
    const page = await context.client.listTasks({ state: request.state, pageSize, pageToken });
    tasks.push(...page.tasks);
    if (page.nextPageToken === "") break;
    if (page.nextPageToken === pageToken) {
      throw new Error(`the manager returned the page token ${quoted(pageToken)} twice`);
    }
    pageToken = page.nextPageToken;
    if (limit !== undefined && tasks.length >= limit) {
      more = true;
      break;
    }
  }
  if (limit !== undefined && tasks.length > limit) {
    tasks.length = limit;
    more = true;
  }
  if (more) {
    const how = request.defaultLimit ? "" : ` (--limit ${limit})`;
    context.stderr(
      `schedctl: showing the first ${limit} tasks${how}; there are more: use --all to list ` +
        `every task${request.defaultLimit ? ", or --limit N" : ""}\n`,
    );
  }
  if (context.output === "json") {
    printJson(context, tasks.map((t) => toJson(TaskSchema, t, JSON_OPTIONS)));
    return 0;
  }
  if (tasks.length === 0) {
    const which = request.state === TaskState.UNSPECIFIED
      ? ""
      : ` in state ${taskStateName(request.state)}`;
    context.stderr(`No tasks${which}.\n`);
    return 0;
  }
  const now = context.now();
  context.stdout(formatTable(
    LIST_COLUMNS,
    tasks.map((t) => [
      t.id,
      taskStateName(t.state),
      t.workerId || "-",
      formatExit(t),
      formatAgo(t.createdAt, now),
      formatCommand(t.cmd, t.params),
    ]),
  ));
  return 0;
}

function describeOutput(text: string, truncated: boolean): string {
  if (text === "") return truncated ? "empty (truncated)" : "empty";
  return truncated
    ? `${formatBytes(text)}, truncated: earlier output was dropped`
    : formatBytes(text);
}

function outputSection(name: string, text: string, truncated: boolean): string {
  const notes = [
    text === "" ? "empty" : "",
    truncated ? "truncated: earlier output was dropped" : "",
  ]
    .filter((n) => n !== "");
  const header = `--- ${name}${notes.length > 0 ? ` (${notes.join(", ")})` : ""} ---\n`;
  if (text === "") return header;
  const body = visible(text, "\n\t");
  return header + body + (body.endsWith("\n") ? "" : "\n");
}

/** The `tasks get` text: every field as "Key: value", then the stdout and stderr sections. */
export function formatTaskDetail(task: Task, nowMs: number): string {
  const fields: Array<[string, string]> = [
    ["ID", task.id],
    ["State", taskStateName(task.state)],
    ["Command", formatCommand(task.cmd, task.params)],
    ["Worker", task.workerId || "-"],
    ["Attempt", String(task.attempt)],
    ["Exit code", task.exitCode === undefined ? "-" : String(task.exitCode)],
    ["Signal", task.signal || "-"],
    ["Dead reason", task.deadReason || "-"],
    ["Created", formatTime(task.createdAt, nowMs)],
    ["Assigned", formatTime(task.assignedAt, nowMs)],
    ["Scheduled", formatTime(task.scheduledAt, nowMs)],
    ["Finished", formatTime(task.finishedAt, nowMs)],
    ["Stdout", describeOutput(task.stdout, task.stdoutTruncated)],
    ["Stderr", describeOutput(task.stderr, task.stderrTruncated)],
  ];
  const width = Math.max(...fields.map(([key]) => key.length)) + 1;
  const lines = fields.map(([key, value]) => `${`${key}:`.padEnd(width)} ${visible(value)}\n`);
  return lines.join("") + "\n" + outputSection("stdout", task.stdout, task.stdoutTruncated) +
    outputSection("stderr", task.stderr, task.stderrTruncated);
}

async function getTask(context: CommandContext, id: string): Promise<number> {
  const { task } = await context.client.getTask({ id });
  if (task === undefined) throw new Error(`the manager answered without the task ${quoted(id)}`);
  if (context.output === "json") {
    printJson(context, toJson(TaskSchema, task, JSON_OPTIONS));
  } else {
    context.stdout(formatTaskDetail(task, context.now()));
  }
  return 0;
}

async function readTasksFile(context: CommandContext, path: string): Promise<TaskSpecInit[]> {
  if (path === "-") return parseTasksFile(await context.readStdin(), "stdin");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (e as Error).message;
    throw new InputError(`${path}: cannot read the tasks file: ${why}`);
  }
  return parseTasksFile(text, path);
}

async function scheduleTasks(context: CommandContext, specs: TaskSpecInit[]): Promise<number> {
  const { tasks } = await context.client.scheduleTasks({ tasks: specs });
  if (context.output === "json") {
    printJson(context, tasks.map((t) => toJson(TaskSchema, t, JSON_OPTIONS)));
  } else {
    context.stdout(tasks.map((t) => `${t.id}\n`).join(""));
  }
  return 0;
}

async function addTask(context: CommandContext, spec: TaskSpecInit): Promise<number> {
  const { tasks } = await context.client.scheduleTasks({ tasks: [spec] });
  const task = tasks[0];
  if (task === undefined) throw new Error("the manager answered without the created task");
  if (context.output === "json") {
    printJson(context, toJson(TaskSchema, task, JSON_OPTIONS));
  } else {
    context.stdout(`${task.id}\n`);
  }
  return 0;
}

function parseLimit(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(
      `tasks ls: --limit ${quoted(text)} is not a whole number above 0`,
      "tasks",
    );
  }
  return Number(text);
}

function parseList(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(
    args,
    [
      {
        names: ["--state"],
        takesValue: true,
        valueHint: "a state: pending, scheduled, done or dead",
      },
      { names: ["--limit"], takesValue: true, valueHint: "a number" },
      { names: ["--all"], takesValue: false },
    ],
    "tasks ls",
    "tasks",
  );
  if (parsed.help) return { help: HELP };
  if (parsed.positionals.length > 0) {
    throw new UsageError(`tasks ls: unexpected argument ${quoted(parsed.positionals[0])}`, "tasks");
  }
  const stateName = parsed.options.get("--state") as string | undefined;
  let state = TaskState.UNSPECIFIED;
  if (stateName !== undefined) {
    if (!Object.hasOwn(TASK_STATE_BY_NAME, stateName)) {
      throw new UsageError(
        `tasks ls: unknown state ${quoted(stateName)}: use pending, scheduled, done or dead`,
        "tasks",
      );
    }
    state = TASK_STATE_BY_NAME[stateName];
  }
  const limitText = parsed.options.get("--limit") as string | undefined;
  const all = parsed.options.has("--all");
  if (all && limitText !== undefined) {
    throw new UsageError("tasks ls: --all and --limit cannot be used together", "tasks");
  }
  const request: ListRequest = {
    state,
    limit: all ? undefined : limitText === undefined ? DEFAULT_LIST_LIMIT : parseLimit(limitText),
    defaultLimit: !all && limitText === undefined,
  };
  return { run: (context) => listTasks(context, request) };
}

function parseGet(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(args, [], "tasks get", "tasks");
  if (parsed.help) return { help: HELP };
  const [id, extra] = parsed.positionals;
  if (id === undefined) throw new UsageError("tasks get: missing the task ID", "tasks");
  if (id === "") throw new UsageError("tasks get: the task ID is empty", "tasks");
  if (extra !== undefined) {
    throw new UsageError(
      `tasks get: unexpected argument ${quoted(extra)} (one ID at a time)`,
      "tasks",
    );
  }
  return { run: (context) => getTask(context, id) };
}

function parseSchedule(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(
    args,
    [{ names: ["--file", "-f"], takesValue: true, valueHint: "a file name (- for stdin)" }],
    "tasks schedule",
    "tasks",
  );
  if (parsed.help) return { help: HELP };
  const path = parsed.options.get("--file") as string | undefined;
  if (parsed.positionals.length > 0) {
    const hint = path === undefined ? ` (the file goes after -f)` : "";
    throw new UsageError(
      `tasks schedule: unexpected argument ${quoted(parsed.positionals[0])}${hint}`,
      "tasks",
    );
  }
  if (path === undefined) throw new UsageError("tasks schedule: missing -f FILE", "tasks");
  if (path === "") throw new UsageError("tasks schedule: -f needs a file name", "tasks");
  return {
    run: async (context) => scheduleTasks(context, await readTasksFile(context, path)),
  };
}

function parseAdd(args: readonly string[]): Invocation {
  let rest = args;
  if (rest[0] === "--") {
    rest = rest.slice(1);
  } else if (rest[0] === "-h" || rest[0] === "--help") {
    return { help: HELP };
  } else if (rest[0] !== undefined && rest[0].startsWith("-") && rest[0] !== "-") {
    throw new UsageError(
      `tasks add: unknown option ${quoted(rest[0])} (to run a command starting with '-', ` +
        `put '--' before it)`,
      "tasks",
    );
  }
  const [cmd, ...params] = rest;
  if (cmd === undefined) throw new UsageError("tasks add: missing CMD", "tasks");
  if (cmd === "") throw new UsageError("tasks add: CMD is empty", "tasks");
  return { run: (context) => addTask(context, { cmd, params }) };
}

/** The `tasks` target. */
export const tasksTarget: Target = {
  name: "tasks",
  summary: [
    ["tasks ls [--state STATE] [--limit N] [--all]", "list tasks, oldest first"],
    ["tasks get ID", "show one task with its output"],
    ["tasks schedule -f FILE", "schedule the tasks of a YAML file (- for stdin)"],
    ["tasks add [--] CMD [PARAMS...]", "schedule one task"],
  ],
  parse(command: string | undefined, args: readonly string[]): Invocation {
    switch (command) {
      case "help":
        return { help: HELP };
      case "ls":
        return parseList(args);
      case "get":
        return parseGet(args);
      case "schedule":
        return parseSchedule(args);
      case "add":
        return parseAdd(args);
      case undefined:
        throw new UsageError("tasks: missing command", "tasks");
      default:
        throw new UsageError(`tasks: unknown command ${quoted(command)}`, "tasks");
    }
  },
};
