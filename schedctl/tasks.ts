/** `schedctl tasks`: list, show, schedule, follow, wait for and cancel tasks. */
import { toJson } from "@bufbuild/protobuf";
import { type Duration, durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { formatDuration } from "../shared/duration.ts";
import { type Task, TaskSchema, TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { parseCommandArgs, type ParsedArgs } from "./args.ts";
import {
  type CommandContext,
  type Invocation,
  JSON_OPTIONS,
  printJson,
  type Target,
} from "./command.ts";
import { parseRemove } from "./remove_each.ts";
import { EXIT_FAILURE, InputError, UsageError } from "./errors.ts";
import {
  formatAgo,
  formatBytes,
  formatCommand,
  formatCpu,
  formatExit,
  formatFromNow,
  formatLabelConstraint,
  formatSizeExact,
  formatTime,
  formatTimeFromNow,
  quoted,
  TASK_STATE_BY_NAME,
  taskStateName,
  taskStateShown,
  visible,
} from "./format.ts";
import { formatTable } from "./table.ts";
import {
  checkCwd,
  checkLabelConstraints,
  checkWorkerId,
  MAX_RETRIES,
  parseCpu,
  parseEnvAssignment,
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
import { parseTasksFile } from "./tasks_file.ts";
import { describeEnd, EXIT_DETACHED, isFinal, waitForTasks } from "./wait.ts";

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
      Show every field of one task as "Key: value" lines (env, cwd, timeouts, retries,
      what it requests of a worker, when a cancel was requested, ...), then its attempts
      (one row per attempt that ended, and the current one), then its stdout and stderr.
      A pending task the manager cannot place yet has a Placement line saying why, e.g.
      "0/5 workers fit: 3 lack memory, 1 is draining, 1 lacks label gpu=true".
      With -o json: the Task object.

  schedule [--wait [--detach-on-interrupt]] -f FILE
      Schedule every task of a YAML file ("-f -" reads stdin) and print the new ids, one
      per line. The whole file is checked first: if any entry is wrong, nothing is sent.
      All or nothing on the manager too: either every task is stored, or none is.
        tasks:
          - cmd: sleep
            params: ["30"]
          - cmd: sh
            params: [-c, 'echo $GREETING; pwd']
            env: {GREETING: hi}     # optional, as --env
            cwd: /tmp               # optional, as --cwd
            timeout: 30s            # optional, as --timeout
            kill_timeout: 5s        # optional, as --kill-timeout
            retries: 3              # optional, as --retries
            retry_backoff: 2s       # optional, as --retry-backoff
            retry_on_failure: true  # optional, as --retry-on-failure
            cpu: 0.5                # optional, as --cpu
            memory: 512MiB          # optional, as --memory
            labels: ["gpu=true", "zone!=b", "ssd"]   # optional, as --label
            worker: w-1             # optional, as --worker
            priority: 10            # optional, as --priority
            schedule_timeout: 10m   # optional, as --schedule-timeout
            queue: true             # optional, as --queue
      Values are taken as written: params: [30, 007] passes "30" and "007".
        -f, --file FILE          the tasks file
        --wait                   wait for the tasks to end (see WAITING below)
        --detach-on-interrupt    with --wait: Ctrl-C detaches without asking
      With -o json: a JSON array of the created Task objects, in file order.

  add [OPTIONS] [--] CMD [PARAMS...]
      Schedule one task and print its id. The options come before CMD; everything after
      CMD is passed to it unchanged, so 'schedctl tasks add ls -la' needs no '--'; put
      '--' before a CMD that starts with '-'. With -o json: the created Task object.
        --env KEY=VALUE          add to the task's environment (repeatable); the worker
                                 starts from a minimal base environment
        --cwd DIR                working directory, an absolute path (default /)
        --timeout DUR            deadline of the run (30s, 5m, 1h30m): past it the task
                                 is killed and dead with reason "deadline exceeded"
        --kill-timeout DUR       grace between SIGTERM and SIGKILL when the task is
                                 stopped (default 10s; 0s: SIGKILL at once)
        --retries N              place the task again, up to N times (0 to ${MAX_RETRIES}),
                                 when an attempt fails: no acknowledgement in
                                 time, its worker lost, restarted or stopped
        --retry-backoff DUR      wait before the first retry, doubled for each
                                 further one (default 1s); needs --retries
        --retry-on-failure       also retry when the process exits non-zero;
                                 needs --retries
        --cpu N                  cores the task needs (0.5, 2); placed only where
                                 that much is free
        --memory SIZE            memory the task needs (512MiB, 2GiB); as --cpu
        --label EXPR             a label requirement (repeatable; all must hold):
                                 key=value, key!=value (another value, or no such
                                 label), or key (the worker has the label)
        --worker ID              run only on this worker
        --priority N             a whole number, default 0, negative allowed: while
                                 tasks wait for room, higher ones are placed first
                                 (then the oldest)
        --schedule-timeout DUR   how long the task may wait to be placed before it
                                 is dead (default: the manager's schedule_timeout)
        --queue                  accept the task even if no worker known now could
                                 ever run it, and wait for one (without it such a
                                 task is refused, saying why)
        --wait                   wait for the task to end (see WAITING below)
        --detach-on-interrupt    with --wait: Ctrl-C detaches without asking

  logs [-f|--follow] [--stderr] [--tail N] ID
      Write what the task printed on stdout (--stderr: on stderr) to stdout, byte for
      byte as the task wrote it.
        -f, --follow   keep writing as the task prints; return when this attempt ends
        --stderr       the task's stderr instead of its stdout
        --tail N       only the last N lines printed so far
      -o json does not apply: the output is the task's bytes.

  cancel ID...
      Cancel pending and scheduled tasks: a task not yet on a worker is dead at once; a
      running one is stopped (SIGTERM to its process group, SIGKILL after its kill
      timeout) and is dead with reason "cancelled" once its process is gone. Prints a
      line per task with its state: "dead (cancelled)", "cancelling", or that it was
      already done or dead. Exit status 0 when every task is dead or cancelling, 1 when
      one was already done. An unknown ID cancels nothing. With -o json: the Tasks.

  rm ID...
      Remove finished (done or dead) tasks from the manager's store now, as its
      task_retention does later: ls, get and logs no longer know them. A pending or
      scheduled task is refused (cancel it first). Prints "ID  removed" per task; exit
      status 1 when any was not removed, with why on stderr.
      With -o json: [{"id": ID, "removed": true|false, "reason": why not}, ...].

  wait [--detach-on-interrupt] ID...
      Wait for tasks that already exist, as --wait does for new ones (see WAITING
      below): one task's output (its current attempt, from the start) and exit code, or
      a batch's progress line. For a task that has ended, at once. An unknown ID waits
      for nothing.
        --detach-on-interrupt    Ctrl-C detaches without asking

  help
      Print this text.

WAITING (--wait, tasks wait)
  One task: its stdout and stderr are written live to schedctl's stdout and stderr, and
  schedctl exits with the task's exit code: 128+N when signal N ended it (SIGKILL: 137,
  SIGTERM: 143). A dead task prints "schedctl: task ID is dead: REASON" and exits 128+N
  when a signal ended its process (deadline exceeded, cancelled), else its exit code when
  the process exited non-zero, else 1. If the output stream breaks, schedctl says so and
  keeps asking the manager for the task's state until it ends. A task that is retried:
  schedctl says "attempt 1 ended (OUTCOME); waiting for attempt 2", keeps waiting, and
  streams the output of the new attempt from its start.
  A batch: no output; a progress line on stderr ("3 pending, 2 scheduled, 10 done,
  1 dead"), then the tasks that failed or died. Exit status 0 when every task is done
  with exit code 0, else 1.
  With -o json nothing is streamed; the final Task (an array for schedule) is printed.
  Ctrl-C while waiting asks "Cancel task ID? [y/N]" (a batch: cancel the unfinished
  tasks?) on the terminal: y cancels and keeps waiting for the end (Ctrl-C again
  detaches); anything else detaches. Detaching leaves the tasks running and exits ${EXIT_DETACHED}.
  With --detach-on-interrupt, or when stdin is not a terminal (nobody to ask), Ctrl-C
  detaches without asking.
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
      taskStateShown(t),
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

function formatSpecDuration(d: Duration | undefined, unset: string): string {
  if (d === undefined) return unset;
  const ms = durationMs(d);
  return ms === 0 ? "0s" : formatDuration(ms);
}

/** The env of a task, sorted by name: one KEY=VALUE per line; "-" when empty. */
function formatEnv(env: Readonly<Record<string, string>>): string[] {
  const names = Object.keys(env).sort();
  if (names.length === 0) return ["-"];
  return names.map((name) => `${name}=${env[name]}`);
}

/** The Retries line of `tasks get`: "none", or "2 (backoff 1s, also on failure)". */
function formatRetries(task: Task): string {
  if (task.retries === 0) return "none";
  const backoff = formatSpecDuration(task.retryBackoff, "1s");
  return `${task.retries} (backoff ${backoff}${task.retryOnFailure ? ", also on failure" : ""})`;
}

const ATTEMPT_COLUMNS = [
  { header: "ATTEMPT" },
  { header: "WORKER" },
  { header: "ASSIGNED" },
  { header: "FINISHED" },
  { header: "OUTCOME" },
];

/** The row of the attempt a task that is not final is on, or waits for. */
function currentAttemptRow(task: Task, nowMs: number): string[] {
  if (task.workerId !== "") {
    const what = task.state === TaskState.SCHEDULED ? "running" : "sent, not acknowledged yet";
    const cancel = task.cancelRequestedAt === undefined ? "" : " (cancel requested)";
    return [
      String(task.attempt),
      task.workerId,
      formatAgo(task.assignedAt, nowMs),
      "-",
      what + cancel,
    ];
  }
  const waiting = task.retryAt === undefined
    ? "waiting to be placed"
    : timestampMs(task.retryAt) > nowMs
    ? `retry ${formatFromNow(task.retryAt, nowMs)}`
    : "retry due";
  return [String(task.attempt + 1), "-", "-", "-", waiting];
}

/**
 * The Attempts section of `tasks get`: a row per attempt that ended, oldest first, then the
 * current one (or the one the task waits for) unless the task is final. Empty when there is
 * no row (a task that died before it was ever placed).
 */
function attemptsSection(task: Task, nowMs: number): string {
  const rows = task.attempts.map((a) => [
    String(a.attempt),
    a.workerId || "-",
    formatAgo(a.assignedAt, nowMs),
    formatAgo(a.finishedAt, nowMs),
    a.outcome || "-",
  ]);
  if (!isFinal(task)) rows.push(currentAttemptRow(task, nowMs));
  if (rows.length === 0) return "";
  return "Attempts:\n" + formatTable(ATTEMPT_COLUMNS, rows) + "\n";
}

/** The keys of `tasks get`, so that values line up the same way for every task. */
const DETAIL_KEY_WIDTH = "Schedule timeout:".length + 1;

/** The Labels lines of `tasks get`: one requirement per line; "-" when none. */
function formatLabelRequests(task: Task): string[] {
  if (task.labels.length === 0) return ["-"];
  return task.labels.map(formatLabelConstraint);
}

/**
 * The `tasks get` text: every field as "Key: value", then the attempts, then the stdout and
 * stderr sections.
 */
export function formatTaskDetail(task: Task, nowMs: number): string {
  const fields: Array<[string, string | string[]]> = [
    ["ID", task.id],
    [
      "State",
      task.waitingInWorkerQueue
        ? `${taskStateName(task.state)}: waiting in ${task.workerId}'s queue, not started yet`
        : taskStateName(task.state),
    ],
    ...(task.state === TaskState.PENDING && task.placement !== ""
      ? [["Placement", task.placement] as [string, string]]
      : []),
    ["Command", formatCommand(task.cmd, task.params)],
    ["Env", formatEnv(task.env)],
    ["Cwd", task.cwd || "/ (default)"],
    ["Timeout", formatSpecDuration(task.timeout, "none")],
    ["Kill timeout", formatSpecDuration(task.killTimeout, "10s (default)")],
    ["Retries", formatRetries(task)],
    ["CPU", task.cpu > 0 ? formatCpu(task.cpu) : "none"],
    ["Memory", task.memoryBytes > 0n ? formatSizeExact(task.memoryBytes) : "none"],
    ["Labels", formatLabelRequests(task)],
    ["Run on", task.pinWorkerId === "" ? "any worker" : `${task.pinWorkerId} only`],
    ["Priority", String(task.priority)],
    ["Schedule timeout", formatSpecDuration(task.scheduleTimeout, "the manager's default")],
    // Not "Queue": that word is the worker's queue, where a scheduled task may wait to start.
    ["Wait for a fit", task.queue ? "yes (--queue): waits for a worker that fits" : "no"],
    ["Worker", task.workerId || "-"],
    ["Attempt", String(task.attempt)],
    ["Exit code", task.exitCode === undefined ? "-" : String(task.exitCode)],
    ["Signal", task.signal || "-"],
    ["Dead reason", task.deadReason || "-"],
    ["Created", formatTime(task.createdAt, nowMs)],
    ["Assigned", formatTime(task.assignedAt, nowMs)],
    ["Scheduled", formatTime(task.scheduledAt, nowMs)],
    ["Finished", formatTime(task.finishedAt, nowMs)],
    ...(task.retryAt === undefined
      ? []
      : [["Retry at", formatTimeFromNow(task.retryAt, nowMs)] as [string, string]]),
    ...(task.cancelRequestedAt === undefined
      ? []
      : [["Cancel requested", formatTime(task.cancelRequestedAt, nowMs)] as [string, string]]),
    ["Stdout", describeOutput(task.stdout, task.stdoutTruncated)],
    ["Stderr", describeOutput(task.stderr, task.stderrTruncated)],
  ];
  const lines = fields.map(([key, value]) => {
    const [first, ...more] = typeof value === "string" ? [value] : value;
    return `${`${key}:`.padEnd(DETAIL_KEY_WIDTH)}${visible(first)}\n` +
      more.map((line) => `${" ".repeat(DETAIL_KEY_WIDTH)}${visible(line)}\n`).join("");
  });
  return lines.join("") + "\n" + attemptsSection(task, nowMs) +
    outputSection("stdout", task.stdout, task.stdoutTruncated) +
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

/** `--wait` and `--detach-on-interrupt` of `tasks add` and `tasks schedule`. */
interface WaitFlags {
  wait: boolean;
  detachOnInterrupt: boolean;
}

const WAIT_SPECS = [
  { names: ["--wait"], takesValue: false },
  { names: ["--detach-on-interrupt"], takesValue: false },
];

function waitFlags(parsed: ParsedArgs, where: string): WaitFlags {
  const flags = {
    wait: parsed.options.has("--wait"),
    detachOnInterrupt: parsed.options.has("--detach-on-interrupt"),
  };
  if (flags.detachOnInterrupt && !flags.wait) {
    throw new UsageError(`${where}: --detach-on-interrupt only applies with --wait`, "tasks");
  }
  return flags;
}

async function scheduleTasks(
  context: CommandContext,
  specs: TaskSpecInit[],
  flags: WaitFlags,
): Promise<number> {
  const { tasks } = await context.client.scheduleTasks({ tasks: specs });
  if (flags.wait) {
    // Table output of a batch: the ids first, as without --wait (one task: its output).
    if (tasks.length > 1 && context.output === "table") {
      context.stdout(tasks.map((t) => `${t.id}\n`).join(""));
    }
    return await waitForTasks(context, tasks, { ...flags, asArray: true });
  }
  if (context.output === "json") {
    printJson(context, tasks.map((t) => toJson(TaskSchema, t, JSON_OPTIONS)));
  } else {
    context.stdout(tasks.map((t) => `${t.id}\n`).join(""));
  }
  return 0;
}

async function addTask(
  context: CommandContext,
  spec: TaskSpecInit,
  flags: WaitFlags,
): Promise<number> {
  const { tasks } = await context.client.scheduleTasks({ tasks: [spec] });
  const task = tasks[0];
  if (task === undefined) throw new Error("the manager answered without the created task");
  if (flags.wait) return await waitForTasks(context, [task], { ...flags, asArray: false });
  if (context.output === "json") {
    printJson(context, toJson(TaskSchema, task, JSON_OPTIONS));
  } else {
    context.stdout(`${task.id}\n`);
  }
  return 0;
}

async function showLogs(
  context: CommandContext,
  request: { id: string; follow: boolean; stderr: boolean; tailLines: number },
): Promise<number> {
  if (context.output === "json") {
    throw new InputError(
      "tasks logs: -o json does not apply: the output is the task's bytes, as it wrote them",
    );
  }
  for await (const { data } of context.client.taskLogs(request)) {
    if (data.length > 0) context.writeStdout(data);
  }
  return 0;
}

/** The `tasks cancel` line of a task after the request, and whether the cancel holds. */
function describeCancel(task: Task): { text: string; ok: boolean } {
  switch (task.state) {
    case TaskState.DEAD:
      if (task.cancelRequestedAt !== undefined) {
        return { text: `dead (${visible(task.deadReason || "cancelled")})`, ok: true };
      }
      return { text: `already dead (${describeEnd(task)})`, ok: true };
    case TaskState.DONE:
      return { text: `already done (${describeEnd(task)}): not cancelled`, ok: false };
    case TaskState.PENDING:
    case TaskState.SCHEDULED:
      if (task.cancelRequestedAt !== undefined) return { text: "cancelling", ok: true };
      return {
        text: `${taskStateName(task.state)} (the manager did not record the cancel)`,
        ok: false,
      };
    default:
      return { text: taskStateName(task.state), ok: false };
  }
}

async function cancelTasks(context: CommandContext, ids: string[]): Promise<number> {
  const { tasks } = await context.client.cancelTasks({ ids });
  const results = tasks.map((t) => ({ task: t, ...describeCancel(t) }));
  if (context.output === "json") {
    printJson(context, tasks.map((t) => toJson(TaskSchema, t, JSON_OPTIONS)));
  } else {
    const width = Math.max(0, ...tasks.map((t) => t.id.length));
    context.stdout(
      results.map(({ task, text }) => `${visible(task.id).padEnd(width)}  ${text}\n`).join(""),
    );
  }
  const done = results.filter((r) => !r.ok).map((r) => r.task.id);
  if (done.length === 0) return 0;
  const what = done.length === 1 ? "1 task was" : `${done.length} tasks were`;
  context.stderr(`schedctl: ${what} not cancelled (already done): ${done.join(", ")}\n`);
  return EXIT_FAILURE;
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
    [
      { names: ["--file", "-f"], takesValue: true, valueHint: "a file name (- for stdin)" },
      ...WAIT_SPECS,
    ],
    "tasks schedule",
    "tasks",
  );
  if (parsed.help) return { help: HELP };
  const flags = waitFlags(parsed, "tasks schedule");
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
    run: async (context) => scheduleTasks(context, await readTasksFile(context, path), flags),
  };
}

/** Runs a spec check for a flag, naming the flag in the message. */
function checkFlag<T>(flag: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof SpecProblem) throw new UsageError(`tasks add: ${flag}: ${e.message}`, "tasks");
    throw e;
  }
}

function parseAdd(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(
    args,
    [
      { names: ["--env"], takesValue: true, valueHint: "KEY=VALUE", repeatable: true },
      { names: ["--cwd"], takesValue: true, valueHint: "a directory (an absolute path)" },
      { names: ["--timeout"], takesValue: true, valueHint: "a duration, e.g. 30s" },
      { names: ["--kill-timeout"], takesValue: true, valueHint: "a duration, e.g. 10s" },
      { names: ["--retries"], takesValue: true, valueHint: `a number from 0 to ${MAX_RETRIES}` },
      { names: ["--retry-backoff"], takesValue: true, valueHint: "a duration, e.g. 1s" },
      { names: ["--retry-on-failure"], takesValue: false },
      { names: ["--cpu"], takesValue: true, valueHint: "a number of cores, e.g. 0.5" },
      { names: ["--memory"], takesValue: true, valueHint: "a size, e.g. 512MiB" },
      {
        names: ["--label"],
        takesValue: true,
        valueHint: "key=value, key!=value or key",
        repeatable: true,
      },
      { names: ["--worker"], takesValue: true, valueHint: "a worker id" },
      { names: ["--priority"], takesValue: true, valueHint: "a whole number, e.g. 10" },
      { names: ["--schedule-timeout"], takesValue: true, valueHint: "a duration, e.g. 10m" },
      { names: ["--queue"], takesValue: false },
      ...WAIT_SPECS,
    ],
    "tasks add",
    "tasks",
    {
      stopAtPositional: true,
      unknownOptionHint: "(to run a command starting with '-', put '--' before it)",
    },
  );
  if (parsed.help) return { help: HELP };
  const [cmd, ...params] = parsed.positionals;
  const spec: TaskSpecInit = { cmd: cmd ?? "", params };
  const env = parsed.repeated.get("--env");
  if (env !== undefined) {
    // Later wins, as in a shell: --env A=1 --env A=2 sets A=2.
    spec.env = Object.fromEntries(
      env.map((text) => checkFlag("--env", () => parseEnvAssignment(text))),
    );
  }
  const cwd = parsed.options.get("--cwd") as string | undefined;
  if (cwd !== undefined) spec.cwd = checkFlag("--cwd", () => checkCwd(cwd));
  const timeout = parsed.options.get("--timeout") as string | undefined;
  if (timeout !== undefined) spec.timeout = checkFlag("--timeout", () => parseTimeout(timeout));
  const killTimeout = parsed.options.get("--kill-timeout") as string | undefined;
  if (killTimeout !== undefined) {
    spec.killTimeout = checkFlag("--kill-timeout", () => parseKillTimeout(killTimeout));
  }
  const retries = parsed.options.get("--retries") as string | undefined;
  if (retries !== undefined) spec.retries = checkFlag("--retries", () => parseRetries(retries));
  const backoff = parsed.options.get("--retry-backoff") as string | undefined;
  if (backoff !== undefined) {
    spec.retryBackoff = checkFlag("--retry-backoff", () => parseRetryBackoff(backoff));
  }
  if (parsed.options.has("--retry-on-failure")) spec.retryOnFailure = true;
  const orphan = retrySettingsWithoutRetries(spec, {
    retries: "--retries",
    backoff: "--retry-backoff",
    onFailure: "--retry-on-failure",
    example: "--retries 3",
  });
  if (orphan !== undefined) throw new UsageError(`tasks add: ${orphan}`, "tasks");
  const cpu = parsed.options.get("--cpu") as string | undefined;
  if (cpu !== undefined) spec.cpu = checkFlag("--cpu", () => parseCpu(cpu));
  const memory = parsed.options.get("--memory") as string | undefined;
  if (memory !== undefined) spec.memoryBytes = checkFlag("--memory", () => parseMemory(memory));
  const labels = parsed.repeated.get("--label");
  if (labels !== undefined) {
    spec.labels = checkFlag(
      "--label",
      () => checkLabelConstraints(labels.map(parseLabelExpression)),
    );
  }
  const worker = parsed.options.get("--worker") as string | undefined;
  if (worker !== undefined) spec.workerId = checkFlag("--worker", () => checkWorkerId(worker));
  const priority = parsed.options.get("--priority") as string | undefined;
  if (priority !== undefined) {
    spec.priority = checkFlag("--priority", () => parsePriority(priority));
  }
  const scheduleTimeout = parsed.options.get("--schedule-timeout") as string | undefined;
  if (scheduleTimeout !== undefined) {
    spec.scheduleTimeout = checkFlag(
      "--schedule-timeout",
      () => parseScheduleTimeout(scheduleTimeout),
    );
  }
  if (parsed.options.has("--queue")) spec.queue = true;
  const flags = waitFlags(parsed, "tasks add");
  // After the options: in `tasks add --env date`, the mistake is --env's value.
  if (cmd === undefined) throw new UsageError("tasks add: missing CMD", "tasks");
  if (cmd === "") throw new UsageError("tasks add: CMD is empty", "tasks");
  return { run: (context) => addTask(context, spec, flags) };
}

function parseTail(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0xffff_ffff) {
    throw new UsageError(
      `tasks logs: --tail ${quoted(text)} is not a whole number above 0`,
      "tasks",
    );
  }
  return Number(text);
}

function parseLogs(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(
    args,
    [
      { names: ["--follow", "-f"], takesValue: false },
      { names: ["--stderr"], takesValue: false },
      { names: ["--tail"], takesValue: true, valueHint: "a number of lines" },
    ],
    "tasks logs",
    "tasks",
  );
  if (parsed.help) return { help: HELP };
  const [id, extra] = parsed.positionals;
  if (id === undefined) throw new UsageError("tasks logs: missing the task ID", "tasks");
  if (id === "") throw new UsageError("tasks logs: the task ID is empty", "tasks");
  if (extra !== undefined) {
    throw new UsageError(
      `tasks logs: unexpected argument ${quoted(extra)} (one ID at a time)`,
      "tasks",
    );
  }
  const tail = parsed.options.get("--tail") as string | undefined;
  const request = {
    id,
    follow: parsed.options.has("--follow"),
    stderr: parsed.options.has("--stderr"),
    tailLines: tail === undefined ? 0 : parseTail(tail),
  };
  return { run: (context) => showLogs(context, request) };
}

function parseWait(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(
    args,
    [{ names: ["--detach-on-interrupt"], takesValue: false }],
    "tasks wait",
    "tasks",
  );
  if (parsed.help) return { help: HELP };
  const ids = taskIds(parsed, "tasks wait");
  const detachOnInterrupt = parsed.options.has("--detach-on-interrupt");
  return { run: (context) => waitForExisting(context, ids, detachOnInterrupt) };
}

/** `tasks wait`: every task is looked up first, so an unknown id waits for nothing. */
async function waitForExisting(
  context: CommandContext,
  ids: string[],
  detachOnInterrupt: boolean,
): Promise<number> {
  const tasks: Task[] = [];
  for (const id of ids) {
    const { task } = await context.client.getTask({ id });
    if (task === undefined) throw new Error(`the manager answered without the task ${id}`);
    tasks.push(task);
  }
  return await waitForTasks(context, tasks, { detachOnInterrupt, asArray: ids.length > 1 });
}

function parseCancel(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(args, [], "tasks cancel", "tasks");
  if (parsed.help) return { help: HELP };
  const ids = taskIds(parsed, "tasks cancel");
  return { run: (context) => cancelTasks(context, ids) };
}

/** The IDs of a command that takes one or more, each once, in the order given. */
function taskIds(parsed: ParsedArgs, where: string): string[] {
  if (parsed.positionals.length === 0) {
    throw new UsageError(`${where}: missing the task ID`, "tasks");
  }
  if (parsed.positionals.includes("")) {
    throw new UsageError(`${where}: a task ID is empty`, "tasks");
  }
  return [...new Set(parsed.positionals)];
}

/** The `tasks` target. */
export const tasksTarget: Target = {
  name: "tasks",
  summary: [
    ["tasks ls [--state STATE] [--limit N] [--all]", "list tasks, oldest first"],
    ["tasks get ID", "show one task with its output"],
    ["tasks schedule [--wait] -f FILE", "schedule the tasks of a YAML file (- for stdin)"],
    ["tasks add [OPTIONS] [--] CMD [PARAMS...]", "schedule one task (--wait: and wait for it)"],
    ["tasks logs [-f] [--stderr] [--tail N] ID", "what a task printed (-f: follow it)"],
    ["tasks cancel ID...", "cancel pending and scheduled tasks"],
    ["tasks rm ID...", "remove finished tasks"],
    ["tasks wait ID...", "wait for tasks to end, with their output (one task)"],
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
      case "logs":
        return parseLogs(args);
      case "cancel":
        return parseCancel(args);
      case "wait":
        return parseWait(args);
      case "rm":
        return parseRemove(args, "tasks", HELP, (client, id) => client.removeTask({ id }));
      case undefined:
        throw new UsageError("tasks: missing command", "tasks");
      default:
        throw new UsageError(`tasks: unknown command ${quoted(command)}`, "tasks");
    }
  },
};
