/**
 * The task state machine: every change to a task goes through `transition`. Pure: no I/O and
 * no clock; the caller passes `now`. Every report is guarded by worker id and attempt, so a
 * late report from an old attempt cannot overwrite a newer state.
 */
import { formatDuration } from "./duration.ts";
import {
  type AttemptRecord,
  isFinal,
  NOT_STARTED_OUTCOME,
  type TaskRecord,
  type TaskSpec,
} from "./task.ts";

/** The program's output as the worker captured it (a bounded tail of each stream). */
export interface TaskOutput {
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export type TaskEvent =
  /** The manager chose a worker and is about to send it the task. */
  | { type: "assign"; workerId: string }
  /** The worker acknowledged the attempt it was sent. */
  | { type: "ack"; workerId: string; attempt: number }
  /** The process ran and ended; `stoppedFor` says why the worker stopped it, if it did. */
  | {
    type: "exited";
    workerId: string;
    attempt: number;
    exitCode: number;
    signal?: string;
    stoppedFor?: StopReason;
    output: TaskOutput;
  }
  /** The worker could not start the process. */
  | { type: "start_failed"; workerId: string; attempt: number; error: string; output?: TaskOutput }
  /** The worker lost track of the process (it restarted while the process ran). */
  | { type: "abandoned"; workerId: string; attempt: number; error: string; output?: TaskOutput }
  /**
   * The worker gave the attempt back without starting it (it waited in the worker's queue
   * when it was cancelled or the worker stopped): placed again, not counted as a retry.
   */
  | { type: "not_started"; workerId: string; attempt: number; reason: string }
  /** The worker did not acknowledge the attempt in time. */
  | { type: "ack_timeout"; attempt: number; timeoutMs: number }
  /** The attempt's worker was gone for longer than lost_timeout, or no longer knows it. */
  | { type: "lost"; workerId: string; attempt: number; why: string }
  /** No worker can take the task; `reason` says why. */
  | { type: "unplaceable"; reason: string }
  /** An operator cancelled the task, and no process of it can be running: dead at once. */
  | { type: "cancel" }
  /** An operator cancelled the task while its worker runs it: dead once the worker stops it. */
  | { type: "cancel_requested" };

/** Why a worker stopped a process; each is the dead reason it leads to. */
export type StopReason = "cancelled" | "deadline exceeded" | "worker stopped";

export type RefusalCode =
  /** The report is for another attempt or from a worker that does not hold the task. */
  | "stale"
  /** The task's state does not allow the event (for example a result for a dead task). */
  | "invalid_state";

export interface Refusal {
  code: RefusalCode;
  message: string;
}

export type TransitionResult =
  /** `changed` is false when the event repeats one already applied (an idempotent report). */
  | { ok: true; task: TaskRecord; changed: boolean }
  | { ok: false; refusal: Refusal };

/** A new task as the operator asked for it, before placement. */
export function newTask(id: string, spec: TaskSpec, now: number): TaskRecord {
  const task: TaskRecord = {
    id,
    cmd: spec.cmd,
    params: spec.params,
    state: "pending",
    attempt: 0,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    createdAt: now,
  };
  if (spec.env && Object.keys(spec.env).length > 0) task.env = spec.env;
  if (spec.cwd) task.cwd = spec.cwd;
  if (spec.timeoutMs !== undefined) task.timeoutMs = spec.timeoutMs;
  if (spec.killTimeoutMs !== undefined) task.killTimeoutMs = spec.killTimeoutMs;
  if (spec.retries) task.retries = spec.retries;
  if (spec.retryBackoffMs !== undefined) task.retryBackoffMs = spec.retryBackoffMs;
  if (spec.retryOnFailure) task.retryOnFailure = true;
  if (spec.cpu) task.cpu = spec.cpu;
  if (spec.memoryBytes) task.memoryBytes = spec.memoryBytes;
  if (spec.labels && spec.labels.length > 0) task.labels = spec.labels;
  if (spec.pinWorkerId) task.pinWorkerId = spec.pinWorkerId;
  if (spec.priority) task.priority = spec.priority;
  if (spec.scheduleTimeoutMs !== undefined) task.scheduleTimeoutMs = spec.scheduleTimeoutMs;
  if (spec.queue) task.queue = true;
  return task;
}

/** The wait before retry number `retry` (1 for the first): doubling, capped at ten minutes. */
export function retryDelayMs(retry: number, backoffMs = DEFAULT_RETRY_BACKOFF_MS): number {
  return Math.min(backoffMs * 2 ** Math.min(Math.max(retry - 1, 0), 30), MAX_RETRY_DELAY_MS);
}

export const DEFAULT_RETRY_BACKOFF_MS = 1000;
const MAX_RETRY_DELAY_MS = 10 * 60_000;

export function transition(task: TaskRecord, event: TaskEvent, now: number): TransitionResult {
  switch (event.type) {
    case "assign":
      if (task.state !== "pending" || isAssigned(task)) {
        return refuse("invalid_state", `task ${task.id} is ${describe(task)}; it cannot be placed`);
      }
      return changed(withoutUndefined({
        ...task,
        workerId: event.workerId,
        attempt: task.attempt + 1,
        assignedAt: now,
        scheduledAt: undefined,
        retryAt: undefined,
        placement: undefined,
      }));

    case "ack": {
      const stale = checkHolder(task, event.workerId, event.attempt);
      if (stale) return stale;
      // A fast task's result can overtake its acknowledgement; the late ack changes nothing.
      if (task.state === "scheduled" || task.state === "done") return unchanged(task);
      if (task.state === "dead") {
        return refuse("invalid_state", `task ${task.id} is already dead: ${task.deadReason}`);
      }
      return changed({ ...task, state: "scheduled", scheduledAt: now });
    }

    case "exited": {
      const stale = checkHolder(task, event.workerId, event.attempt);
      if (stale) return stale;
      const sameExit = task.exitCode === event.exitCode &&
        (task.signal ?? "") === (event.signal ?? "");
      const state = event.stoppedFor ? "dead" : "done";
      if (task.state === "done" || task.state === "dead") {
        const repeat = sameExit && task.state === state &&
          (state === "done" || task.deadReason === event.stoppedFor);
        if (repeat) return unchanged(task);
        return refuse(
          "invalid_state",
          task.state === "done"
            ? `task ${task.id} is already done with ${exitText(task)}`
            : `task ${task.id} is already dead: ${task.deadReason}`,
        );
      }
      const output: TaskRecord = {
        ...task,
        ...event.output,
        exitCode: event.exitCode,
        scheduledAt: task.scheduledAt ?? now,
      };
      if (event.signal) output.signal = event.signal;
      else delete output.signal;
      const outcome = event.signal ? `signal ${event.signal}` : `exit code ${event.exitCode}`;
      if (event.stoppedFor === "worker stopped") {
        return changed(retryOrDead(output, now, `${outcome} (worker stopped)`, "worker stopped"));
      }
      if (event.stoppedFor) {
        return changed(
          endAttempt({ ...output, ...dead(event.stoppedFor, now) }, now, event.stoppedFor),
        );
      }
      const wantsRetry = event.exitCode !== 0 && task.retryOnFailure && retriesLeft(task) > 0;
      // A task someone asked to cancel is not placed again, however its process ended.
      if (wantsRetry && task.cancelRequestedAt === undefined) {
        return changed(retry(output, now, outcome));
      }
      return changed(endAttempt({ ...output, state: "done", finishedAt: now }, now, outcome));
    }

    case "start_failed": {
      const stale = checkHolder(task, event.workerId, event.attempt);
      if (stale) return stale;
      const reason = `cannot start: ${event.error}`;
      if (task.state === "dead" && task.deadReason === reason) return unchanged(task);
      if (task.state === "done" || task.state === "dead") {
        return refuse("invalid_state", `task ${task.id} is already ${task.state}`);
      }
      return changed(endAttempt({ ...task, ...event.output, ...dead(reason, now) }, now, reason));
    }

    case "abandoned": {
      const stale = checkHolder(task, event.workerId, event.attempt);
      if (stale) return stale;
      const reason = `worker restarted: ${event.error}`;
      if (task.state === "dead" && task.deadReason === reason) return unchanged(task);
      if (task.state === "done" || task.state === "dead") {
        return refuse("invalid_state", `task ${task.id} is already ${task.state}`);
      }
      return changed(retryOrDead({ ...task, ...event.output }, now, "worker restarted", reason));
    }

    case "not_started": {
      const stale = checkHolder(task, event.workerId, event.attempt);
      if (stale) return stale;
      const outcome = `${NOT_STARTED_OUTCOME}${event.reason}`;
      if (isFinal(task.state)) {
        const repeat = task.attempts?.at(-1)?.outcome === outcome &&
          task.attempts.at(-1)?.attempt === event.attempt;
        if (repeat) return unchanged(task);
        return refuse("invalid_state", `task ${task.id} is already ${task.state}`);
      }
      if (task.cancelRequestedAt !== undefined) {
        return changed(endAttempt({ ...task, ...dead("cancelled", now) }, now, outcome));
      }
      const ended = endAttempt(task, now, outcome);
      return changed(withoutUndefined({
        ...ended,
        state: "pending",
        workerId: undefined,
        assignedAt: undefined,
        scheduledAt: undefined,
        unstarted: (task.unstarted ?? 0) + 1,
      }));
    }

    case "ack_timeout":
      if (task.state !== "pending" || task.attempt !== event.attempt || !isAssigned(task)) {
        return refuse("stale", `task ${task.id} is no longer waiting for attempt ${event.attempt}`);
      }
      return changed(retryOrDead(
        task,
        now,
        "ack timeout",
        `worker ${task.workerId} did not acknowledge within ${formatDuration(event.timeoutMs)}`,
      ));

    case "lost": {
      const stale = checkHolder(task, event.workerId, event.attempt);
      if (stale) return stale;
      if (task.state === "done" || task.state === "dead") {
        return refuse("invalid_state", `task ${task.id} is already ${task.state}`);
      }
      return changed(retryOrDead(task, now, `lost: ${event.why}`, "lost"));
    }

    case "unplaceable":
      if (task.state !== "pending" || isAssigned(task)) {
        return refuse("invalid_state", `task ${task.id} is ${describe(task)}`);
      }
      // The diagnosis lives on in the dead reason; `placement` is for waiting tasks.
      return changed(
        withoutUndefined({ ...task, ...dead(event.reason, now), placement: undefined }),
      );

    case "cancel":
      if (task.state === "done" || task.state === "dead") {
        return refuse("invalid_state", `task ${task.id} is already ${task.state}`);
      }
      {
        // The request is recorded even when granted at once, so the record says who ended it.
        const cancelled = { ...task, ...dead("cancelled", now), cancelRequestedAt: now };
        if (!isAssigned(task)) {
          return changed(withoutUndefined({ ...cancelled, retryAt: undefined }));
        }
        return changed(endAttempt(cancelled, now, "cancelled"));
      }

    case "cancel_requested":
      if (task.state === "done" || task.state === "dead") {
        return refuse("invalid_state", `task ${task.id} is already ${task.state}`);
      }
      if (!isAssigned(task)) {
        return refuse("invalid_state", `task ${task.id} is on no worker; cancel it at once`);
      }
      if (task.cancelRequestedAt !== undefined) return unchanged(task);
      return changed({ ...task, cancelRequestedAt: now });
  }
}

/** How many more attempts the task may have after the current one. */
export function retriesLeft(task: TaskRecord): number {
  return Math.max(0, (task.retries ?? 0) + 1 - task.attempt + (task.unstarted ?? 0));
}

/** Records the current attempt's end in the task's history. */
function endAttempt(task: TaskRecord, now: number, outcome: string): TaskRecord {
  if (!isAssigned(task)) return task;
  const record: AttemptRecord = withoutUndefined({
    attempt: task.attempt,
    workerId: task.workerId!,
    assignedAt: task.assignedAt,
    scheduledAt: task.scheduledAt,
    finishedAt: now,
    outcome,
  });
  return { ...task, attempts: [...(task.attempts ?? []), record] };
}

/**
 * A failed attempt: placed again after its backoff when retries are left (and nobody asked to
 * cancel it), else dead with `reason`.
 */
function retryOrDead(task: TaskRecord, now: number, outcome: string, reason: string): TaskRecord {
  if (task.cancelRequestedAt !== undefined) {
    return endAttempt({ ...task, ...dead("cancelled", now) }, now, outcome);
  }
  if (retriesLeft(task) > 0) return retry(task, now, outcome);
  return endAttempt({ ...task, ...dead(reason, now) }, now, outcome);
}

function retry(task: TaskRecord, now: number, outcome: string): TaskRecord {
  const ended = endAttempt(task, now, outcome);
  return withoutUndefined({
    ...ended,
    state: "pending",
    workerId: undefined,
    assignedAt: undefined,
    scheduledAt: undefined,
    retryAt: now + retryDelayMs(task.attempt, task.retryBackoffMs),
  });
}

/** Drops keys set to undefined, so records compare and store the same however they were made. */
function withoutUndefined<T extends object>(value: T): T {
  // A loop, not Object.entries: that made an array per key, for every change of every task.
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = v;
  }
  return out as T;
}

/** Pending tasks are assigned once a worker has been chosen for the current attempt. */
export function isAssigned(task: TaskRecord): boolean {
  return task.workerId !== undefined && task.attempt > 0;
}

function checkHolder(
  task: TaskRecord,
  workerId: string,
  attempt: number,
): TransitionResult | undefined {
  if (task.workerId !== workerId || task.attempt !== attempt) {
    const holder = task.workerId
      ? `attempt ${task.attempt} on worker ${task.workerId}`
      : "no worker";
    return refuse(
      "stale",
      `task ${task.id} attempt ${attempt} on worker ${workerId} is stale: the task is held by ${holder}`,
    );
  }
  return undefined;
}

function dead(
  reason: string,
  now: number,
): Pick<TaskRecord, "state" | "deadReason" | "finishedAt"> {
  return { state: "dead", deadReason: reason, finishedAt: now };
}

function describe(task: TaskRecord): string {
  if (task.state === "pending" && isAssigned(task)) {
    return `pending on worker ${task.workerId}`;
  }
  return task.state;
}

function exitText(task: TaskRecord): string {
  return task.signal ? `signal ${task.signal}` : `exit code ${task.exitCode}`;
}

function changed(task: TaskRecord): TransitionResult {
  return { ok: true, task, changed: true };
}

function unchanged(task: TaskRecord): TransitionResult {
  return { ok: true, task, changed: false };
}

function refuse(code: RefusalCode, message: string): TransitionResult {
  return { ok: false, refusal: { code, message } };
}
