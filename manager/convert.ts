/** Domain records to API messages, and back, at the RPC edge only. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  durationFromMs,
  durationMs,
  type DurationSchema,
  type Timestamp,
  timestampMs,
  type TimestampSchema,
} from "@bufbuild/protobuf/wkt";
import {
  type Capabilities,
  type LabelConstraint as ProtoLabelConstraint,
  LabelConstraint_Op,
  type RunTaskSchema,
  type TaskSchema,
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

/**
 * The API's Task, as the init shape a message is made from. Not made into a message here: the
 * gRPC answers that carry tasks are encoded from it by hand (task_frames.ts), and making
 * messages through protobuf-es's reflection (create, timestampFromMs) was half their cost.
 */
export function taskToProto(task: TaskRecord): MessageInitShape<typeof TaskSchema> {
  return {
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
    createdAt: timestampInit(task.createdAt),
    assignedAt: timestampInit(task.assignedAt),
    scheduledAt: timestampInit(task.scheduledAt),
    finishedAt: timestampInit(task.finishedAt),
    env: task.env ?? {},
    cwd: task.cwd ?? "",
    timeout: durationInit(task.timeoutMs),
    killTimeout: durationInit(task.killTimeoutMs),
    cancelRequestedAt: timestampInit(task.cancelRequestedAt),
    retries: task.retries ?? 0,
    retryBackoff: durationInit(task.retryBackoffMs),
    retryOnFailure: task.retryOnFailure ?? false,
    retryAt: timestampInit(task.retryAt),
    cpu: task.cpu ?? 0,
    memoryBytes: BigInt(task.memoryBytes ?? 0),
    labels: labelsToProto(task.labels),
    pinWorkerId: task.pinWorkerId ?? "",
    priority: task.priority ?? 0,
    scheduleTimeout: durationInit(task.scheduleTimeoutMs),
    queue: task.queue ?? false,
    placement: task.placement ?? "",
    attempts: (task.attempts ?? []).map((a) => ({
      attempt: a.attempt,
      workerId: a.workerId,
      assignedAt: timestampInit(a.assignedAt),
      scheduledAt: timestampInit(a.scheduledAt),
      finishedAt: timestampInit(a.finishedAt),
      outcome: a.outcome,
    })),
  };
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
    ...(task.priority ? { priority: task.priority } : {}),
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
    connectedAt: timestampInit(worker.connectedAt),
    lastSeenAt: timestampInit(worker.lastSeenAt),
    disconnectedAt: timestampInit(worker.disconnectedAt),
    version: worker.version,
    draining: worker.draining ?? false,
    drainDeadline: timestampInit(worker.drainDeadline),
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
      ...(capacity.queue > 0 ? { queue: capacity.queue } : {}),
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

/** timestampFromMs's seconds and nanos, without making a message. */
function timestampInit(
  ms: number | undefined,
): MessageInitShape<typeof TimestampSchema> | undefined {
  if (ms === undefined) return undefined;
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

/** durationFromMs's seconds and nanos (both with the duration's sign), without a message. */
function durationInit(ms: number | undefined): MessageInitShape<typeof DurationSchema> | undefined {
  if (ms === undefined) return undefined;
  const sign = ms < 0 ? -1 : 1;
  const abs = Math.abs(ms);
  const seconds = Math.floor(abs / 1000);
  const nanos = (abs - seconds * 1000) * 1_000_000;
  return { seconds: BigInt(seconds * sign), nanos: nanos === 0 ? 0 : nanos * sign };
}
