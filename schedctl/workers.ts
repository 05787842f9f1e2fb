/**
 * `schedctl workers`: the workers the manager knows; taking one out of service and back, and
 * forgetting one that is gone.
 */
import { toJson } from "@bufbuild/protobuf";
import { type Duration, durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { parseDuration } from "../shared/duration.ts";
import {
  type Capacity,
  type Task,
  TaskSchema,
  type Worker,
  WorkerSchema,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { parseCommandArgs } from "./args.ts";
import {
  type CommandContext,
  type Invocation,
  JSON_OPTIONS,
  printJson,
  type Target,
} from "./command.ts";
import { UsageError } from "./errors.ts";
import { parseRemove } from "./remove_each.ts";
import {
  formatAgo,
  formatCommand,
  formatCpu,
  formatFromNow,
  formatSize,
  formatSizeExact,
  formatTime,
  formatTimeFromNow,
  labelList,
  quoted,
  taskStateShown,
  visible,
  workerStateText,
} from "./format.ts";
import { formatTable } from "./table.ts";

/** The LABELS column of `workers ls` is cut at this many terminal columns. */
const LABELS_WIDTH = 40;
/** The COMMAND column of `workers get` is cut at this many terminal columns. */
const COMMAND_WIDTH = 50;

const HELP = `Usage: schedctl [-c FILE] [-v] [-o table|json] workers COMMAND [ARGS]

Commands:
  ls      List the workers the manager knows, connected or not: ID, ADDRESS (as the
          manager sees the connection), HOSTNAME, STATE (connected or disconnected,
          and ", draining" while drained), TASKS (tasks placed on it and not yet done
          or dead), SLOTS, CPU and MEMORY (what its unfinished tasks take / what it
          offers: "1/2", "0.5/4", "512MiB/8GiB"), LABELS (cut at ${LABELS_WIDTH} columns),
          LAST SEEN.
          With -o json: a JSON array of the Worker objects.

  get ID  Show every field of one worker as "Key: value" lines (state, drain, capacity
          and what is used of it, labels, machine, version, times), then its unfinished
          tasks (ID, STATE, ATTEMPT, ASSIGNED, CPU, MEMORY, COMMAND).
          With -o json: {"worker": Worker, "tasks": [Task, ...]}.

  drain ID [--deadline DUR]
          Take the worker out of service: the manager places no new task on it; the
          tasks it runs go on to their end. Prints the worker's new state.
            --deadline DUR   past this long (30s, 10m, 1h), the tasks still running
                             on it are cancelled (0s: at once)
          With -o json: the Worker object.

  undrain ID
          Put a drained worker back in service. Prints the worker's new state.
          With -o json: the Worker object.

  rm ID...
          Forget disconnected workers, so that ls no longer lists them (a worker with
          that id that connects later is known anew). Refused for a connected worker,
          and for one that still holds unfinished tasks (they wait for it until the
          manager's lost_timeout). Prints "ID  removed" per worker; exit status 1 when
          any was not removed, with why on stderr.
          With -o json: [{"id": ID, "removed": true|false, "reason": why not}, ...].

  help    Print this text.
`;

const COLUMNS = [
  { header: "ID" },
  { header: "ADDRESS" },
  { header: "HOSTNAME" },
  { header: "STATE" },
  { header: "TASKS" },
  { header: "SLOTS" },
  { header: "CPU" },
  { header: "MEMORY" },
  { header: "LABELS", maxWidth: LABELS_WIDTH },
  { header: "LAST SEEN" },
];

/** "used/total" of one resource; "-" when the worker did not say what it offers. */
function usage(
  worker: Worker,
  pick: (c: Capacity) => number | bigint,
  format: (n: number | bigint) => string,
): string {
  const capacity = worker.capabilities?.capacity;
  if (capacity === undefined) return "-";
  const used = worker.used === undefined ? 0 : pick(worker.used);
  return `${format(used)}/${format(pick(capacity))}`;
}

/**
 * Slots in use, and the tasks waiting in the worker's queue for one: the manager counts both
 * as the worker's, so the tasks beyond its slots are the queued ones.
 */
function slotUsage(worker: Worker, style: "table" | "line"): string {
  const capacity = worker.capabilities?.capacity;
  if (capacity === undefined) return style === "table" ? "-" : "not reported by the worker";
  const tasks = worker.used?.slots ?? 0;
  const running = Math.min(tasks, capacity.slots);
  const queued = tasks - running;
  if (style === "table") {
    return `${running}/${capacity.slots}` + (queued > 0 ? ` +${queued} queued` : "");
  }
  const line = `${running} of ${capacity.slots} used`;
  if (capacity.queue === 0) return line;
  return `${line}, ${queued} of ${capacity.queue} queued`;
}
const cpu = (c: Capacity) => c.cpu;
const memory = (c: Capacity) => c.memoryBytes;
const formatCores = (n: number | bigint) => formatCpu(Number(n));

/** The `workers ls` table. */
export function formatWorkerTable(workers: readonly Worker[], nowMs: number): string {
  return formatTable(
    COLUMNS,
    workers.map((w) => [
      w.id,
      w.address || "-",
      w.hostname || "-",
      workerStateText(w),
      String(w.runningTasks),
      slotUsage(w, "table"),
      usage(w, cpu, formatCores),
      usage(w, memory, formatSize),
      labelList(w.capabilities?.labels ?? {}).join(",") || "-",
      formatAgo(w.lastSeenAt, nowMs),
    ]),
  );
}

async function listWorkers(context: CommandContext): Promise<number> {
  const { workers } = await context.client.listWorkers({});
  if (context.output === "json") {
    printJson(context, workers.map((w) => toJson(WorkerSchema, w, JSON_OPTIONS)));
    return 0;
  }
  if (workers.length === 0) {
    context.stderr("No workers: none has connected to the manager yet.\n");
    return 0;
  }
  context.stdout(formatWorkerTable(workers, context.now()));
  return 0;
}

/** The keys of `workers get`, so that values line up the same way for every worker. */
const DETAIL_KEY_WIDTH = "Drain deadline:".length + 1;

/** "0.5 of 4 cores used" and the like; "not reported" without a capacity. */
function usageLine(
  worker: Worker,
  pick: (c: Capacity) => number | bigint,
  format: (n: number | bigint) => string,
  unit: string,
): string {
  const capacity = worker.capabilities?.capacity;
  if (capacity === undefined) return "not reported by the worker";
  const used = worker.used === undefined ? 0 : pick(worker.used);
  return `${format(used)} of ${format(pick(capacity))}${unit} used`;
}

/** The Machine line: "linux/x86_64, 8 cores, 15.5GiB memory"; "-" when not reported. */
function machineLine(worker: Worker): string {
  const c = worker.capabilities;
  if (c === undefined) return "-";
  const parts = [
    c.os || c.arch ? `${c.os || "?"}/${c.arch || "?"}` : "",
    c.cpuCores > 0 ? `${c.cpuCores} ${c.cpuCores === 1 ? "core" : "cores"}` : "",
    c.memoryBytes > 0n ? `${formatSizeExact(c.memoryBytes)} memory` : "",
  ].filter((p) => p !== "");
  return parts.length === 0 ? "-" : parts.join(", ");
}

/** What a drain means for the worker now: "no deadline" or the deadline and when. */
function describeDrainDeadline(worker: Worker, nowMs: number): string {
  if (worker.drainDeadline === undefined) return "none (its tasks may run to their end)";
  return `${
    formatTimeFromNow(worker.drainDeadline, nowMs)
  }: tasks still running then are cancelled`;
}

const TASK_COLUMNS = [
  { header: "ID" },
  { header: "STATE" },
  { header: "ATTEMPT" },
  { header: "ASSIGNED" },
  { header: "CPU" },
  { header: "MEMORY" },
  { header: "COMMAND", maxWidth: COMMAND_WIDTH },
];

/** The `workers get` text: every field as "Key: value", then its unfinished tasks. */
export function formatWorkerDetail(worker: Worker, tasks: readonly Task[], nowMs: number): string {
  const labels = labelList(worker.capabilities?.labels ?? {});
  const fields: Array<[string, string | string[]]> = [
    ["ID", worker.id],
    ["Hostname", worker.hostname || "-"],
    ["Address", worker.address || "-"],
    ["State", workerStateText(worker)],
    ["Draining", worker.draining ? "yes: no new tasks are placed on it" : "no"],
    ...(worker.draining
      ? [["Drain deadline", describeDrainDeadline(worker, nowMs)] as [string, string]]
      : []),
    ["Tasks", String(worker.runningTasks)],
    ["Slots", slotUsage(worker, "line")],
    ["CPU", usageLine(worker, cpu, formatCores, " cores")],
    ["Memory", usageLine(worker, memory, formatSize, "")],
    ["Labels", labels.length === 0 ? ["-"] : labels],
    ["Machine", machineLine(worker)],
    ["Version", worker.version || "-"],
    ["Connected", formatTime(worker.connectedAt, nowMs)],
    ["Last seen", formatTime(worker.lastSeenAt, nowMs)],
    ["Disconnected", formatTime(worker.disconnectedAt, nowMs)],
  ];
  const lines = fields.map(([key, value]) => {
    const [first, ...more] = typeof value === "string" ? [value] : value;
    return `${`${key}:`.padEnd(DETAIL_KEY_WIDTH)}${visible(first)}\n` +
      more.map((line) => `${" ".repeat(DETAIL_KEY_WIDTH)}${visible(line)}\n`).join("");
  });
  const section = tasks.length === 0
    ? "Unfinished tasks: none\n"
    : "Unfinished tasks:\n" + formatTable(
      TASK_COLUMNS,
      tasks.map((t) => [
        t.id,
        taskStateShown(t) + (t.cancelRequestedAt === undefined ? "" : ", cancelling"),
        String(t.attempt),
        formatAgo(t.assignedAt, nowMs),
        t.cpu > 0 ? formatCpu(t.cpu) : "-",
        t.memoryBytes > 0n ? formatSize(t.memoryBytes) : "-",
        formatCommand(t.cmd, t.params),
      ]),
    );
  return lines.join("") + "\n" + section;
}

async function getWorker(context: CommandContext, id: string): Promise<number> {
  const { worker, tasks } = await context.client.getWorker({ id });
  if (worker === undefined) {
    throw new Error(`the manager answered without the worker ${quoted(id)}`);
  }
  if (context.output === "json") {
    printJson(context, {
      worker: toJson(WorkerSchema, worker, JSON_OPTIONS),
      tasks: tasks.map((t) => toJson(TaskSchema, t, JSON_OPTIONS)),
    });
  } else {
    context.stdout(formatWorkerDetail(worker, tasks, context.now()));
  }
  return 0;
}

/**
 * The line `workers drain` and `workers undrain` print: "w-1  connected, draining (2
 * unfinished tasks; deadline 2025-01-02T12:05:00.000Z, in 5m)".
 */
export function formatWorkerStateLine(worker: Worker, nowMs: number): string {
  const state = workerStateText(worker);
  if (!worker.draining) return `${visible(worker.id)}  ${state}\n`;
  const n = worker.runningTasks;
  const tasks = `${n} unfinished ${n === 1 ? "task" : "tasks"}`;
  const deadline = worker.drainDeadline === undefined
    ? "no deadline"
    : `deadline ${new Date(timestampMs(worker.drainDeadline)).toISOString()}, ${
      formatFromNow(worker.drainDeadline, nowMs)
    }`;
  return `${visible(worker.id)}  ${state} (${tasks}; ${deadline})\n`;
}

async function changeDrain(
  context: CommandContext,
  request: { id: string; drain: boolean; deadline?: Duration },
): Promise<number> {
  const { worker } = request.drain
    ? await context.client.drainWorker({ id: request.id, deadline: request.deadline })
    : await context.client.undrainWorker({ id: request.id });
  if (worker === undefined) {
    throw new Error(`the manager answered without the worker ${quoted(request.id)}`);
  }
  if (context.output === "json") printJson(context, toJson(WorkerSchema, worker, JSON_OPTIONS));
  else context.stdout(formatWorkerStateLine(worker, context.now()));
  return 0;
}

/** The one worker ID of `workers get|drain|undrain`. */
function oneId(positionals: readonly string[], where: string): string {
  const [id, extra] = positionals;
  if (id === undefined) throw new UsageError(`${where}: missing the worker ID`, "workers");
  if (id === "") throw new UsageError(`${where}: the worker ID is empty`, "workers");
  if (extra !== undefined) {
    throw new UsageError(
      `${where}: unexpected argument ${quoted(extra)} (one ID at a time)`,
      "workers",
    );
  }
  return id;
}

function parseDeadline(text: string): Duration {
  try {
    return durationFromMs(parseDuration(text));
  } catch (e) {
    const message = (e as Error).message.replace(/^Invalid duration/, "invalid duration");
    throw new UsageError(`workers drain: --deadline: ${message}`, "workers");
  }
}

function parseDrain(args: readonly string[]): Invocation {
  const parsed = parseCommandArgs(
    args,
    [{ names: ["--deadline"], takesValue: true, valueHint: "a duration, e.g. 10m" }],
    "workers drain",
    "workers",
  );
  if (parsed.help) return { help: HELP };
  const deadlineText = parsed.options.get("--deadline") as string | undefined;
  const deadline = deadlineText === undefined ? undefined : parseDeadline(deadlineText);
  const id = oneId(parsed.positionals, "workers drain");
  return { run: (context) => changeDrain(context, { id, drain: true, deadline }) };
}

/** The `workers` target. */
export const workersTarget: Target = {
  name: "workers",
  summary: [
    ["workers ls", "list the workers, their state, capacity and labels"],
    ["workers get ID", "show one worker with its unfinished tasks"],
    ["workers drain ID [--deadline DUR]", "place no new tasks on a worker"],
    ["workers undrain ID", "put a drained worker back in service"],
    ["workers rm ID...", "forget disconnected workers"],
  ],
  parse(command: string | undefined, args: readonly string[]): Invocation {
    switch (command) {
      case "help":
        return { help: HELP };
      case "ls": {
        const parsed = parseCommandArgs(args, [], "workers ls", "workers");
        if (parsed.help) return { help: HELP };
        if (parsed.positionals.length > 0) {
          throw new UsageError(
            `workers ls: unexpected argument ${quoted(parsed.positionals[0])}`,
            "workers",
          );
        }
        return { run: listWorkers };
      }
      case "get": {
        const parsed = parseCommandArgs(args, [], "workers get", "workers");
        if (parsed.help) return { help: HELP };
        const id = oneId(parsed.positionals, "workers get");
        return { run: (context) => getWorker(context, id) };
      }
      case "drain":
        return parseDrain(args);
      case "undrain": {
        const parsed = parseCommandArgs(args, [], "workers undrain", "workers");
        if (parsed.help) return { help: HELP };
        const id = oneId(parsed.positionals, "workers undrain");
        return { run: (context) => changeDrain(context, { id, drain: false }) };
      }
      case "rm":
        return parseRemove(args, "workers", HELP, (client, id) => client.removeWorker({ id }));
      case undefined:
        throw new UsageError("workers: missing command", "workers");
      default:
        throw new UsageError(`workers: unknown command ${quoted(command)}`, "workers");
    }
  },
};
