/** The task as the manager keeps it: the domain record every part of the code shares. */

export const TASK_STATES = ["pending", "scheduled", "done", "dead"] as const;
export type TaskState = typeof TASK_STATES[number];

/** How an operator asks for a task to be run. */
export interface TaskSpec {
  cmd: string;
  params: string[];
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  killTimeoutMs?: number;
  /** How many more times to place the task when an attempt fails. */
  retries?: number;
  /** Wait before the first retry, doubling for each further one. */
  retryBackoffMs?: number;
  /** Also retry when the process exits non-zero. */
  retryOnFailure?: boolean;
  /** Cores the task needs. */
  cpu?: number;
  /** Bytes of memory the task needs. */
  memoryBytes?: number;
  /** Labels a worker must have. */
  labels?: LabelConstraint[];
  /** Run only on this worker. */
  pinWorkerId?: string;
  /** Higher runs first when tasks wait for room. */
  priority?: number;
  /** How long it may wait to be placed; absent means the manager's default. */
  scheduleTimeoutMs?: number;
  /** Accept it even when no known worker could ever run it. */
  queue?: boolean;
}

/** A label a task requires of its worker: key=value, key!=value, or key present. */
export interface LabelConstraint {
  key: string;
  op: "=" | "!=" | "exists";
  value?: string;
}

/** What a worker offers to tasks, or what its tasks take of it. */
export interface Capacity {
  cpu: number;
  memoryBytes: number;
  slots: number;
  /**
   * Only in what a worker offers: how many tasks more than its slots it holds until a slot
   * frees (absent: none).
   */
  queue?: number;
}

/** One attempt at running a task, as it ended. */
export interface AttemptRecord {
  attempt: number;
  workerId: string;
  assignedAt?: number;
  scheduledAt?: number;
  finishedAt: number;
  /** How it ended, in plain words: "exit code 3", "ack timeout", "lost", ... */
  outcome: string;
}

/** How the outcome of an attempt given back unstarted begins ("not started: <why>"). */
export const NOT_STARTED_OUTCOME = "not started: ";
/** Why a queued attempt was given back to go to an idle slot (Unqueue's reason by default). */
export const MOVED_TO_IDLE_SLOT = "moved to a slot free elsewhere";

/**
 * When a pending task last began to wait for a worker, which its schedule timeout counts
 * from: its creation, the end of its retry backoff, or the give-back of an attempt that never
 * started (a task may wait long in a worker's queue; that wait is not the manager's).
 */
export function waitingSince(task: TaskRecord): number {
  const last = task.attempts?.at(-1);
  const givenBack = last !== undefined && last.attempt === task.attempt &&
      last.outcome.startsWith(NOT_STARTED_OUTCOME)
    ? last.finishedAt
    : 0;
  return Math.max(task.retryAt ?? task.createdAt, givenBack);
}

/** Final states never change again. */
export function isFinal(state: TaskState): boolean {
  return state === "done" || state === "dead";
}

export interface TaskRecord {
  id: string;
  cmd: string;
  params: string[];
  state: TaskState;
  /** The worker the current attempt was sent to; absent before placement. */
  workerId?: string;
  /** Counts placements: 0 before the first. Reports for another attempt are stale. */
  attempt: number;
  exitCode?: number;
  /** The signal that ended the process, such as "SIGKILL". */
  signal?: string;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  deadReason?: string;
  /** Added to the worker's base environment. */
  env?: Record<string, string>;
  /** Absolute working directory; absent means "/". */
  cwd?: string;
  /** A deadline for the run, from its start; absent means none. */
  timeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL; absent means the worker's default. */
  killTimeoutMs?: number;
  /** When an operator asked to cancel the running task (it is dead once its process is gone). */
  cancelRequestedAt?: number;
  retries?: number;
  /** Attempts a worker gave back without starting them; they do not use up retries. */
  unstarted?: number;
  retryBackoffMs?: number;
  retryOnFailure?: boolean;
  /** Every attempt that ended, oldest first. */
  attempts?: AttemptRecord[];
  /** When a task waiting to be retried is placed again. */
  retryAt?: number;
  cpu?: number;
  memoryBytes?: number;
  labels?: LabelConstraint[];
  pinWorkerId?: string;
  priority?: number;
  scheduleTimeoutMs?: number;
  queue?: boolean;
  /** Why a pending task is not placed yet (as of when it was last tried). */
  placement?: string;
  /** Times are milliseconds since the epoch on the manager's clock. */
  createdAt: number;
  assignedAt?: number;
  scheduledAt?: number;
  finishedAt?: number;
}

export const WORKER_STATES = ["connected", "disconnected"] as const;
export type WorkerState = typeof WORKER_STATES[number];

export interface WorkerCapabilities {
  cpuCores: number;
  memoryBytes: number;
  os: string;
  arch: string;
  /** What it offers to tasks; absent for workers that never said (one slot, no limits). */
  capacity?: Capacity;
  labels?: Record<string, string>;
}

export interface WorkerRecord {
  id: string;
  hostname: string;
  /** host:port of the worker's connection as the manager sees it. */
  address: string;
  state: WorkerState;
  capabilities: WorkerCapabilities;
  version: string;
  connectedAt: number;
  /** The manager's clock when it last heard from the worker (stored on state changes only). */
  lastSeenAt: number;
  disconnectedAt?: number;
  /** Gets no new tasks. */
  draining?: boolean;
  /** When a drain's deadline passes, its unfinished tasks are cancelled. */
  drainDeadline?: number;
}
