/**
 * Turning API values into text for people: state names, ages, times, exit columns, shell
 * quoting and making control characters visible. Pure functions, no I/O, no clock reads.
 */
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { formatSize as formatSizeNumber } from "../shared/size.ts";
import {
  type LabelConstraint,
  LabelConstraint_Op,
  type Task,
  TaskState,
  type Worker,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";

const TASK_STATE_NAMES: Record<number, string> = {
  [TaskState.PENDING]: "pending",
  [TaskState.SCHEDULED]: "scheduled",
  [TaskState.DONE]: "done",
  [TaskState.DEAD]: "dead",
};

const WORKER_STATE_NAMES: Record<number, string> = {
  [WorkerState.CONNECTED]: "connected",
  [WorkerState.DISCONNECTED]: "disconnected",
};

/** The state names operators type and read: pending, scheduled, done, dead. */
export const TASK_STATE_BY_NAME: Readonly<Record<string, TaskState>> = {
  pending: TaskState.PENDING,
  scheduled: TaskState.SCHEDULED,
  done: TaskState.DONE,
  dead: TaskState.DEAD,
};

/** "pending", "scheduled", "done", "dead"; "unknown(7)" for a value this schedctl does not know. */
export function taskStateName(state: TaskState): string {
  return TASK_STATE_NAMES[state] ?? `unknown(${state})`;
}

/** A task's state for a table: "scheduled (queued)" while it waits in its worker's queue. */
export function taskStateShown(task: { state: TaskState; waitingInWorkerQueue: boolean }): string {
  const name = taskStateName(task.state);
  return task.waitingInWorkerQueue ? `${name} (queued)` : name;
}

/** "connected", "disconnected"; "unknown(7)" for a value this schedctl does not know. */
export function workerStateName(state: WorkerState): string {
  return WORKER_STATE_NAMES[state] ?? `unknown(${state})`;
}

/** A worker's state with its drain: "connected", "connected, draining", "disconnected". */
export function workerStateText(worker: Pick<Worker, "state" | "draining">): string {
  const state = workerStateName(worker.state);
  return worker.draining ? `${state}, draining` : state;
}

/** Cores for people: "4", "0.5", "0.333" (at most three decimals, as millicores). */
export function formatCpu(cores: number): string {
  return String(Number(cores.toFixed(3)));
}

const SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/**
 * Bytes for people, in binary units: "512B", "64KiB", "8GiB", "1.5GiB", "7.8GiB" (one
 * decimal at most, so not always exact; see formatSizeExact).
 */
export function formatSize(bytes: bigint | number): string {
  return formatSizeNumber(Number(bytes));
}

/** formatSize, followed by the exact number of bytes when it is rounded: "7.8GiB (8345...)". */
export function formatSizeExact(bytes: bigint | number): string {
  const text = formatSize(bytes);
  const shown = /^(\d+(?:\.\d)?)([A-Za-z]+)$/.exec(text);
  if (shown !== null) {
    const back = Number(shown[1]) * 1024 ** SIZE_UNITS.indexOf(shown[2]);
    if (back === Number(bytes)) return text;
  }
  return `${text} (${BigInt(bytes)} bytes)`;
}

/** A label requirement as schedctl takes it: "gpu=true", "zone!=b", "ssd". */
export function formatLabelConstraint(c: Pick<LabelConstraint, "key" | "op" | "value">): string {
  switch (c.op) {
    case LabelConstraint_Op.EQUAL:
      return `${c.key}=${c.value}`;
    case LabelConstraint_Op.NOT_EQUAL:
      return `${c.key}!=${c.value}`;
    case LabelConstraint_Op.EXISTS:
      return c.key;
    default:
      return `${c.key} (unknown operator ${c.op}) ${c.value}`;
  }
}

/** A worker's labels, sorted by key: ["gpu=true", "zone=a"]. */
export function labelList(labels: Readonly<Record<string, string>>): string[] {
  return Object.keys(labels).sort().map((key) => `${key}=${labels[key]}`);
}

/**
 * A coarse age for tables: "0s", "45s", "2m30s", "35m", "3h20m", "30h", "5d". Negative ages
 * (the manager's clock is ahead of ours) count as 0s.
 */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 10) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** "2s ago" for a timestamp, "-" when there is none. */
export function formatAgo(ts: Timestamp | undefined, nowMs: number): string {
  if (ts === undefined) return "-";
  return `${formatAge(nowMs - timestampMs(ts))} ago`;
}

/** "in 2s" for a time ahead of now, else "2s ago" (as formatAgo); "-" when there is none. */
export function formatFromNow(ts: Timestamp | undefined, nowMs: number): string {
  if (ts === undefined) return "-";
  const ahead = timestampMs(ts) - nowMs;
  return ahead > 0 ? `in ${formatAge(Math.ceil(ahead / 1000) * 1000)}` : formatAgo(ts, nowMs);
}

/** "2025-01-02T03:04:05.000Z (in 2s)": formatTime for a time that may be ahead of now. */
export function formatTimeFromNow(ts: Timestamp | undefined, nowMs: number): string {
  if (ts === undefined) return "-";
  return `${new Date(timestampMs(ts)).toISOString()} (${formatFromNow(ts, nowMs)})`;
}

/** "2025-01-02T03:04:05.000Z (2s ago)" for a timestamp, "-" when there is none. */
export function formatTime(ts: Timestamp | undefined, nowMs: number): string {
  if (ts === undefined) return "-";
  return `${new Date(timestampMs(ts)).toISOString()} (${formatAgo(ts, nowMs)})`;
}

/** The EXIT column: the signal that ended the process, else the exit code, else "-". */
export function formatExit(task: Task): string {
  if (task.signal !== "") return task.signal;
  if (task.exitCode !== undefined) return String(task.exitCode);
  return "-";
}

// Characters that cannot be shown as themselves on one line: C0 and C1 controls, DEL, format
// characters (bidi overrides, zero-width spaces, ...) and line/paragraph separators. The
// zero-width joiner is left alone: emoji sequences need it and it cannot break a line.
const INVISIBLE = /(?!\u200d)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
const HAS_INVISIBLE = /(?!\u200d)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

const NAMED_ESCAPES: Record<string, string> = { "\n": "\\n", "\t": "\\t", "\r": "\\r" };

function escapeChar(ch: string): string {
  const named = NAMED_ESCAPES[ch];
  if (named !== undefined) return named;
  const cp = ch.codePointAt(0)!;
  if (cp <= 0xff) return `\\x${cp.toString(16).padStart(2, "0")}`;
  return `\\u{${cp.toString(16)}}`;
}

/**
 * Makes control and invisible characters visible as escapes (`\n`, `\t`, `\x1b`, `\u{202e}`), so
 * the text stays on one line and cannot move the cursor or reorder what follows. Characters
 * in `keep` (e.g. "\n\t" for multi-line output) are left as they are.
 */
export function visible(text: string, keep = ""): string {
  return text.replace(INVISIBLE, (ch) => keep.includes(ch) ? ch : escapeChar(ch));
}

// Words a POSIX shell reads back unchanged without quotes. Letters and digits of any script
// are fine; everything else gets quoted.
const SHELL_SAFE = /^[\p{L}\p{N}_@%+=:,./-]+$/u;

/**
 * Quotes one argument the way a POSIX shell would read it back: as is when it is safe,
 * in single quotes otherwise, and as bash's $'...' when it holds control or invisible
 * characters (so they show as escapes and the text stays on one line).
 */
export function shellQuoteArg(arg: string): string {
  if (arg === "") return "''";
  if (HAS_INVISIBLE.test(arg)) {
    const body = arg.replace(/[\\']/g, (c) => `\\${c}`).replace(INVISIBLE, (ch) => {
      const e = escapeChar(ch);
      // bash's $'...' spells code points above 0xff as \uXXXX or \UXXXXXXXX.
      return e.startsWith("\\u{") ? `\\U${ch.codePointAt(0)!.toString(16).padStart(8, "0")}` : e;
    });
    return `$'${body}'`;
  }
  if (SHELL_SAFE.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The command line of a task, quoted so it could be pasted into a shell: `sleep 30`. */
export function formatCommand(cmd: string, params: readonly string[]): string {
  return [cmd, ...params].map(shellQuoteArg).join(" ");
}

/** The size of a text in UTF-8 bytes, for people: "0 bytes", "1 byte", "12 bytes". */
export function formatBytes(text: string): string {
  const n = new TextEncoder().encode(text).length;
  return n === 1 ? "1 byte" : `${n} bytes`;
}

/** A value to name in a message: in double quotes, control characters made visible. */
export function quoted(text: string): string {
  return `"${visible(text)}"`;
}
