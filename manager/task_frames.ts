/**
 * The answers of the operator's task calls (ScheduleTasks, GetTask, ListTasks), encoded and
 * framed by hand (shared/proto_writer.ts). They carry whole Task messages, a hundred per
 * ScheduleTasks batch and up to a thousand per page: protobuf-es's reflection took about 6 µs
 * a task, 2.5% of the manager's CPU while it placed thousands of tasks a second, and most of
 * a large page's encoding. The bytes are the ones protobuf-es writes (task_frames_test.ts
 * compares them, and fails when Task gains a field); any other answer goes through
 * protobuf-es.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import {
  GetTaskResponseSchema,
  ListTasksResponseSchema,
  ScheduleTasksResponseSchema,
  type Task,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { FRAME_HEADER, frameInPlace, grpcFrame } from "../shared/grpc_frames.ts";
import { ProtoWriter, VARINT } from "../shared/proto_writer.ts";

/** A Timestamp or Duration as a message holds it. */
interface SecondsNanos {
  seconds?: bigint;
  nanos?: number;
}

type TaskInit = MessageInitShape<typeof ScheduleTasksResponseSchema>["tasks"] extends
  (infer T)[] | undefined ? T : never;

/** The answer, framed as gRPC frames it: a flag byte, a 4-byte length, the message. */
export function frameOperatorAnswer<T extends DescMessage>(
  schema: T,
  answer: MessageInitShape<T>,
): Uint8Array {
  const name = schema.typeName;
  const list = name === ScheduleTasksResponseSchema.typeName ||
    name === ListTasksResponseSchema.typeName;
  if (!list && name !== GetTaskResponseSchema.typeName) return grpcFrame(schema, answer);
  const w = new ProtoWriter(FRAME_HEADER);
  if (list) {
    const { tasks, nextPageToken } = answer as MessageInitShape<typeof ListTasksResponseSchema>;
    for (const task of tasks ?? []) w.message(1, (m) => writeTask(m, task));
    w.string(2, nextPageToken);
  } else {
    const { task } = answer as MessageInitShape<typeof GetTaskResponseSchema>;
    if (task) w.message(1, (m) => writeTask(m, task));
  }
  return frameInPlace(w.finish());
}

/** Task's fields in the order protobuf-es writes them (their numbers'). */
function writeTask(w: ProtoWriter, task: TaskInit | Task): void {
  w.string(1, task.id);
  w.string(2, task.cmd);
  for (const param of task.params ?? []) w.string(3, param, true);
  w.int(4, task.state);
  w.string(5, task.workerId);
  w.int(6, task.attempt);
  if (task.exitCode !== undefined) {
    // Optional: written when set, zero included.
    w.tag(7, VARINT);
    w.varint(task.exitCode);
  }
  w.string(8, task.stdout);
  w.string(9, task.stderr);
  bool(w, 10, task.stdoutTruncated);
  bool(w, 11, task.stderrTruncated);
  w.string(12, task.deadReason);
  secondsNanos(w, 13, task.createdAt);
  secondsNanos(w, 14, task.assignedAt);
  secondsNanos(w, 15, task.scheduledAt);
  secondsNanos(w, 16, task.finishedAt);
  w.string(17, task.signal);
  w.stringMap(18, task.env);
  w.string(19, task.cwd);
  secondsNanos(w, 20, task.timeout);
  secondsNanos(w, 21, task.killTimeout);
  secondsNanos(w, 22, task.cancelRequestedAt);
  w.int(23, task.retries);
  secondsNanos(w, 24, task.retryBackoff);
  bool(w, 25, task.retryOnFailure);
  for (const attempt of task.attempts ?? []) {
    w.message(26, (a) => {
      a.int(1, attempt.attempt);
      a.string(2, attempt.workerId);
      secondsNanos(a, 3, attempt.assignedAt);
      secondsNanos(a, 4, attempt.scheduledAt);
      secondsNanos(a, 5, attempt.finishedAt);
      a.string(6, attempt.outcome);
    });
  }
  secondsNanos(w, 27, task.retryAt);
  w.double(28, task.cpu ?? 0);
  w.int(29, task.memoryBytes);
  for (const label of task.labels ?? []) {
    w.message(30, (l) => {
      l.string(1, label.key);
      l.int(2, label.op);
      l.string(3, label.value);
    });
  }
  w.string(31, task.pinWorkerId);
  w.int(32, task.priority);
  secondsNanos(w, 33, task.scheduleTimeout);
  bool(w, 34, task.queue);
  w.string(35, task.placement);
  bool(w, 36, task.waitingInWorkerQueue);
}

function bool(w: ProtoWriter, field: number, value: boolean | undefined): void {
  if (!value) return;
  w.tag(field, VARINT);
  w.varint(1);
}

/** A Timestamp or a Duration: a message when set, however empty. */
function secondsNanos(w: ProtoWriter, field: number, value: SecondsNanos | undefined): void {
  if (value === undefined) return;
  w.message(field, (m) => {
    m.int(1, value.seconds ?? 0n);
    m.int(2, value.nanos ?? 0);
  });
}
