/** Domain records to API messages, and back, at the RPC edge only. */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type Capabilities,
  type Task,
  TaskSchema,
  TaskState,
  type Worker,
  WorkerSchema,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type {
  TaskRecord,
  TaskState as DomainTaskState,
  WorkerCapabilities,
  WorkerRecord,
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
  });
}

export function workerToProto(worker: WorkerRecord, runningTasks: number): Worker {
  return create(WorkerSchema, {
    id: worker.id,
    hostname: worker.hostname,
    address: worker.address,
    state: worker.state === "connected" ? WorkerState.CONNECTED : WorkerState.DISCONNECTED,
    capabilities: {
      ...worker.capabilities,
      memoryBytes: BigInt(worker.capabilities.memoryBytes),
    },
    runningTasks,
    connectedAt: timestamp(worker.connectedAt),
    lastSeenAt: timestamp(worker.lastSeenAt),
    disconnectedAt: timestamp(worker.disconnectedAt),
    version: worker.version,
  });
}

export function capabilitiesToDomain(capabilities: Capabilities | undefined): WorkerCapabilities {
  return {
    cpuCores: capabilities?.cpuCores ?? 0,
    memoryBytes: Number(capabilities?.memoryBytes ?? 0n),
    os: capabilities?.os ?? "",
    arch: capabilities?.arch ?? "",
  };
}

export function msFromTimestamp(ts: Timestamp | undefined): number | undefined {
  return ts ? timestampMs(ts) : undefined;
}

function timestamp(ms: number | undefined): Timestamp | undefined {
  return ms === undefined ? undefined : timestampFromMs(ms);
}
