import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TaskSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { newTask } from "../shared/task_machine.ts";
import { taskToProto } from "./convert.ts";

Deno.test("a task's times and durations are protobuf-es's timestampFromMs and durationFromMs", () => {
  const base = newTask("t", { cmd: "x", params: [] }, 0);

  for (
    const ms of [0, 1, 999, 1_000, 1_001, 1_795_836_198_001, -1, -999, -1_000, -1_500, 90_061_500]
  ) {
    const task = create(
      TaskSchema,
      taskToProto({
        ...base,
        createdAt: ms,
        retryAt: ms,
        attempts: [{ attempt: 1, workerId: "w", assignedAt: ms, finishedAt: ms, outcome: "lost" }],
        timeoutMs: ms,
        killTimeoutMs: ms,
        retryBackoffMs: ms,
        scheduleTimeoutMs: ms,
      }),
    );
    const at = timestampFromMs(ms);
    const long = durationFromMs(ms);
    assert.deepEqual(
      [task.createdAt, task.retryAt, task.attempts[0].assignedAt],
      [at, at, at],
      `${ms}`,
    );
    assert.deepEqual(
      [task.timeout, task.killTimeout, task.retryBackoff, task.scheduleTimeout],
      [long, long, long, long],
      `${ms}`,
    );
  }
  const unset = create(TaskSchema, taskToProto(base));
  assert.equal(unset.finishedAt, undefined);
  assert.equal(unset.timeout, undefined);
});
