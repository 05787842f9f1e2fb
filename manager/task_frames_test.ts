import assert from "node:assert/strict";
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AttemptSchema,
  GetTaskResponseSchema,
  LabelConstraintSchema,
  ListTasksResponseSchema,
  ListWorkersResponseSchema,
  ScheduleTasksResponseSchema,
  TaskSchema,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { grpcFrame } from "../shared/grpc_frames.ts";
import type { TaskRecord } from "../shared/task.ts";
import { newTask } from "../shared/task_machine.ts";
import { taskToProto } from "./convert.ts";
import { frameOperatorAnswer } from "./task_frames.ts";

const base = newTask("01m8g2ywvjvkw7vp", { cmd: "/bin/true", params: [] }, 1_795_836_198_001);

const RECORDS: [string, TaskRecord][] = [
  ["a new task", base],
  ["a placed one", { ...base, workerId: "w1", attempt: 1, assignedAt: base.createdAt + 1 }],
  ["a done one with exit code 0", {
    ...base,
    state: "done",
    workerId: "w1",
    attempt: 1,
    exitCode: 0,
    stdout: "hello\n",
    scheduledAt: base.createdAt + 3,
    finishedAt: base.createdAt + 12,
    attempts: [{
      attempt: 1,
      workerId: "w1",
      assignedAt: base.createdAt + 1,
      scheduledAt: base.createdAt + 3,
      finishedAt: base.createdAt + 12,
      outcome: "exit code 0",
    }],
  }],
  ["everything, with odd values", {
    ...base,
    cmd: "sh",
    params: ["-c", "", "ünïcödé ✓ 𝄞"],
    state: "dead",
    workerId: "wörker",
    attempt: 4_000_000_000,
    exitCode: -1,
    signal: "SIGKILL",
    stdout: "o".repeat(3_000),
    stderr: "é".repeat(100),
    stdoutTruncated: true,
    stderrTruncated: true,
    deadReason: "cancelled",
    env: { A: "1", EMPTY: "", "É": "ß" },
    cwd: "/tmp",
    timeoutMs: -1_500,
    killTimeoutMs: 0,
    cancelRequestedAt: 0,
    retries: 3,
    retryBackoffMs: 90_061_500,
    retryOnFailure: true,
    retryAt: base.createdAt + 5_000,
    cpu: 0.25,
    memoryBytes: 2 ** 40,
    labels: [
      { key: "zone", op: "=", value: "a" },
      { key: "gpu", op: "exists" },
      { key: "os", op: "!=", value: "" },
    ],
    pinWorkerId: "w2",
    priority: -7,
    scheduleTimeoutMs: 60_000,
    queue: true,
    placement: "no worker has 0.25 CPU free",
  }],
  ["a large CPU and priority", { ...base, cpu: 1e9, priority: 2 ** 31 - 1 }],
];

function sameAsProtobufEs<T extends DescMessage>(
  schema: T,
  answer: MessageInitShape<T>,
  name: string,
) {
  assert.deepEqual([...frameOperatorAnswer(schema, answer)], [...grpcFrame(schema, answer)], name);
}

Deno.test("task answers are byte for byte protobuf-es's", () => {
  const tasks = RECORDS.map(([, record]) => taskToProto(record));
  for (const [i, [name]] of RECORDS.entries()) {
    sameAsProtobufEs(ScheduleTasksResponseSchema, { tasks: [tasks[i]] }, `ScheduleTasks: ${name}`);
    sameAsProtobufEs(GetTaskResponseSchema, { task: tasks[i] }, `GetTask: ${name}`);
  }
  sameAsProtobufEs(ScheduleTasksResponseSchema, { tasks }, "a batch of every kind");
  sameAsProtobufEs(ListTasksResponseSchema, { tasks, nextPageToken: "t-9" }, "a page with more");
  sameAsProtobufEs(ListTasksResponseSchema, { tasks: [] }, "an empty last page");
  sameAsProtobufEs(GetTaskResponseSchema, {}, "no task");
  sameAsProtobufEs(GetTaskResponseSchema, {
    task: { ...tasks[0], waitingInWorkerQueue: true },
  }, "a task waiting in its worker's queue");
  // Messages made by hand rather than by taskToProto: every field set, or none.
  sameAsProtobufEs(GetTaskResponseSchema, { task: create(TaskSchema) }, "an empty task");
  sameAsProtobufEs(GetTaskResponseSchema, {
    task: create(TaskSchema, {
      id: "t",
      state: 4,
      memoryBytes: 2n ** 63n + 5n,
      createdAt: timestampFromMs(-1_001),
      timeout: durationFromMs(-1),
      attempts: [{}],
      labels: [{}],
    }),
  }, "edge values");
});

Deno.test("other answers still go through protobuf-es", () => {
  const answer = { workers: [] };
  assert.deepEqual(
    [...frameOperatorAnswer(ListWorkersResponseSchema, answer)],
    [...grpcFrame(ListWorkersResponseSchema, answer)],
  );
});

Deno.test("frames made one after another keep their own bytes", () => {
  const answers = RECORDS.map(([, record]) => ({ task: taskToProto(record) }));
  const frames = Array.from(
    { length: 200 },
    (_, i) => frameOperatorAnswer(GetTaskResponseSchema, answers[i % answers.length]),
  );
  frames.forEach((framed, i) => {
    const expected = grpcFrame(GetTaskResponseSchema, answers[i % answers.length]);
    assert.deepEqual([...framed], [...expected], `frame ${i}`);
  });
});

Deno.test("the messages encoded by hand have the fields the encoder knows, and no more", () => {
  // A field added to one of these messages must be added to task_frames.ts too.
  const numbers = (fields: { number: number }[]) => fields.map((f) => f.number);
  assert.deepEqual(numbers(TaskSchema.fields), Array.from({ length: 36 }, (_, i) => i + 1));
  assert.deepEqual(numbers(AttemptSchema.fields), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(numbers(LabelConstraintSchema.fields), [1, 2, 3]);
  assert.deepEqual(numbers(ScheduleTasksResponseSchema.fields), [1]);
  assert.deepEqual(numbers(GetTaskResponseSchema.fields), [1]);
  assert.deepEqual(numbers(ListTasksResponseSchema.fields), [1, 2]);
});
