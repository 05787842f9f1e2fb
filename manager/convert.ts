/** Domain records to API messages, and back, at the RPC edge only. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type Duration,
  durationFromMs,
  durationMs,
  type Timestamp,
  timestampFromMs,
  timestampMs,
} from "@bufbuild/protobuf/wkt";
import {
  type Capabilities,
  type LabelConstraint as ProtoLabelConstraint,
  LabelConstraint_Op,
  type RunTaskSchema,
  type Task,
  TaskSchema,
  type TaskSpec as ProtoTaskSpec,
  TaskState,
  Termination,
  type Worker,
  WorkerSchema,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { StopReason } from "../shared/task_machine.ts";
import { InvalidArgumentError } from "./errors.ts";
import type { WorkerView } from "./manager.ts";
import { capacityOf } from "./placement.ts";
import type {
  Capacity,
  LabelConstraint,
  TaskRecord,
  TaskSpec,
  TaskState as DomainTaskState,
  WorkerCapabilities,
} from "../shared/task.ts";

const TASK_STATES: Record<DomainTaskState, TaskState> = {
  pending: TaskState.PENDING,
  scheduled: TaskState.SCHEDULED,
  done: TaskState.DONE,
  dead: TaskState.DEAD,
};

export function taskStateToDomain(state: TaskState): DomainTaskState | undefined {
  const entry = Object.entries(TASK_STATES).find(([, value]) => value === state);
  return entry?.[0] as DomainTaskState | undefined;
}

export function taskToProto(task: TaskRecord): Task {
  return create(TaskSchema, {
    id: task.id,
    cmd: task.cmd,
    params: task.params,
    state: TASK_STATES[task.state],
    workerId: task.workerId ?? "",
    attempt: task.attempt,
    exitCode: task.exitCode,
    signal: task.signal ?? "",
    stdout: task.stdout,
    stderr: task.stderr,
    stdoutTruncated: task.stdoutTruncated,
    stderrTruncated: task.stderrTruncated,
    deadReason: task.deadReason ?? "",
    createdAt: timestamp(task.createdAt),
    assignedAt: timestamp(task.assignedAt),
    scheduledAt: timestamp(task.scheduledAt),
    finishedAt: timestamp(task.finishedAt),
    env: task.env ?? {},
    cwd: task.cwd ?? "",
    timeout: duration(task.timeoutMs),
    killTimeout: duration(task.killTimeoutMs),
    cancelRequestedAt: timestamp(task.cancelRequestedAt),
    retries: task.retries ?? 0,
    retryBackoff: duration(task.retryBackoffMs),
    retryOnFailure: task.retryOnFailure ?? false,
    retryAt: timestamp(task.retryAt),
    cpu: task.cpu ?? 0,
    memoryBytes: BigInt(task.memoryBytes ?? 0),
    labels: labelsToProto(task.labels),
    pinWorkerId: task.pinWorkerId ?? "",
    priority: task.priority ?? 0,
    scheduleTimeout: duration(task.scheduleTimeoutMs),
    queue: task.queue ?? false,
    placement: task.placement ?? "",
    attempts: (task.attempts ?? []).map((a) => ({
      attempt: a.attempt,
      workerId: a.workerId,
      assignedAt: timestamp(a.assignedAt),
      scheduledAt: timestamp(a.scheduledAt),
      finishedAt: timestamp(a.finishedAt),
      outcome: a.outcome,
    })),
  });
}

/** What a worker is sent to run an attempt; optional fields only when the task has them. */
export function runTaskMessage(task: TaskRecord): MessageInitShape<typeof RunTaskSchema> {
  return {
    taskId: task.id,
    attempt: task.attempt,
    cmd: task.cmd,
    params: task.params,
    ...(task.env ? { env: task.env } : {}),
    ...(task.cwd ? { cwd: task.cwd } : {}),
    ...(task.timeoutMs !== undefined ? { timeout: durationFromMs(task.timeoutMs) } : {}),
    ...(task.killTimeoutMs !== undefined
      ? { killTimeout: durationFromMs(task.killTimeoutMs) }
      : {}),
  };
}

/** A spec from the API; durations become milliseconds (negative ones stay negative). */
export function taskSpecToDomain(spec: ProtoTaskSpec): TaskSpec {
  return {
    cmd: spec.cmd,
    params: spec.params,
    env: spec.env,
    cwd: spec.cwd || undefined,
    timeoutMs: spec.timeout ? durationMs(spec.timeout) : undefined,
    killTimeoutMs: spec.killTimeout ? durationMs(spec.killTimeout) : undefined,
    retries: spec.retries || undefined,
    retryBackoffMs: spec.retryBackoff ? durationMs(spec.retryBackoff) : undefined,
    retryOnFailure: spec.retryOnFailure || undefined,
    cpu: spec.cpu || undefined,
    memoryBytes: spec.memoryBytes ? Number(spec.memoryBytes) : undefined,
    labels: spec.labels.length > 0 ? labelsToDomain(spec.labels) : undefined,
    pinWorkerId: spec.workerId || undefined,
    priority: spec.priority || undefined,
    scheduleTimeoutMs: spec.scheduleTimeout ? durationMs(spec.scheduleTimeout) : undefined,
    queue: spec.queue || undefined,
  };
}

/** Why the worker stopped a process, from the API's enum. */
export function terminationToDomain(termination: Termination): StopReason | undefined {
  switch (termination) {
    case Termination.CANCELLED:
      return "cancelled";
    case Termination.DEADLINE_EXCEEDED:
      return "deadline exceeded";
    case Termination.WORKER_STOPPING:
      return "worker stopped";
    default:
      return undefined;
  }
}

export function workerToProto(view: WorkerView): Worker {
  const { worker } = view;
  const caps = worker.capabilities;
  return create(WorkerSchema, {
    id: worker.id,
    hostname: worker.hostname,
    address: worker.address,
    state: worker.state === "connected" ? WorkerState.CONNECTED : WorkerState.DISCONNECTED,
    capabilities: {
      cpuCores: caps.cpuCores,
      memoryBytes: BigInt(caps.memoryBytes),
      os: caps.os,
      arch: caps.arch,
      capacity: capacityToProto(capacityOf(worker)),
      labels: caps.labels ?? {},
    },
    runningTasks: view.runningTasks,
    connectedAt: timestamp(worker.connectedAt),
    lastSeenAt: timestamp(worker.lastSeenAt),
    disconnectedAt: timestamp(worker.disconnectedAt),
    version: worker.version,
    draining: worker.draining ?? false,
    drainDeadline: timestamp(worker.drainDeadline),
    used: capacityToProto(view.used),
  });
}

function capacityToProto(capacity: Capacity) {
  return { ...capacity, memoryBytes: BigInt(Math.round(capacity.memoryBytes)) };
}

export function capabilitiesToDomain(capabilities: Capabilities | undefined): WorkerCapabilities {
  const domain: WorkerCapabilities = {
    cpuCores: capabilities?.cpuCores ?? 0,
    memoryBytes: Number(capabilities?.memoryBytes ?? 0n),
    os: capabilities?.os ?? "",
    arch: capabilities?.arch ?? "",
  };
  const capacity = capabilities?.capacity;
  if (capacity) {
    domain.capacity = {
      cpu: capacity.cpu,
      memoryBytes: Number(capacity.memoryBytes),
      slots: capacity.slots,
    };
  }
  if (capabilities && Object.keys(capabilities.labels).length > 0) {
    domain.labels = { ...capabilities.labels };
  }
  return domain;
}

const LABEL_OPS: Record<LabelConstraint["op"], LabelConstraint_Op> = {
  "=": LabelConstraint_Op.EQUAL,
  "!=": LabelConstraint_Op.NOT_EQUAL,
  "exists": LabelConstraint_Op.EXISTS,
};

function labelsToProto(labels: LabelConstraint[] | undefined) {
  return (labels ?? []).map((c) => ({ key: c.key, op: LABEL_OPS[c.op], value: c.value ?? "" }));
}

/** Label constraints from the API; an unknown op is refused, naming the key. */
function labelsToDomain(labels: ProtoLabelConstraint[]): LabelConstraint[] {
  return labels.map((c) => {
    const op = (Object.entries(LABEL_OPS).find(([, v]) => v === c.op)?.[0]) as
      | LabelConstraint["op"]
      | undefined;
    if (!op) throw new InvalidArgumentError(`label ${JSON.stringify(c.key)} has no operator`);
    return op === "exists" ? { key: c.key, op } : { key: c.key, op, value: c.value };
  });
}

export function msFromTimestamp(ts: Timestamp | undefined): number | undefined {
  return ts ? timestampMs(ts) : undefined;
}

function duration(ms: number | undefined): Duration | undefined {
  return ms === undefined ? undefined : durationFromMs(ms);
}

function timestamp(ms: number | undefined): Timestamp | undefined {
  return ms === undefined ? undefined : timestampFromMs(ms);
}
