import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { SetTaskRequestSchema, Termination } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { setTaskRequest } from "./set_task.ts";

const output = { stdout: "out", stderr: "err", stdoutTruncated: true, stderrTruncated: false };

Deno.test("a report becomes a SetTask with its outcome, output, times and termination", () => {
  const request = create(
    SetTaskRequestSchema,
    setTaskRequest("w-1", {
      taskId: "t-1",
      attempt: 2,
      result: {
        outcome: { kind: "exited", exitCode: 143, signal: "SIGTERM" },
        output,
        startedAt: 1_700_000_000_123,
        finishedAt: 1_700_000_005_456,
        termination: "cancelled",
      },
    }),
  );
  assert.equal(request.workerId, "w-1");
  assert.equal(request.taskId, "t-1");
  assert.equal(request.attempt, 2);
  assert.deepEqual(request.outcome.case, "exited");
  assert.equal(request.outcome.value?.exitCode, 143);
  assert.equal(request.outcome.value?.signal, "SIGTERM");
  assert.equal(request.stdout, "out");
  assert.equal(request.stdoutTruncated, true);
  assert.equal(timestampMs(request.startedAt!), 1_700_000_000_123);
  assert.equal(timestampMs(request.finishedAt!), 1_700_000_005_456);
  assert.equal(request.termination, Termination.CANCELLED);
});

Deno.test("a start error and an abandoned attempt keep their reason", () => {
  const base = { taskId: "t", attempt: 1 };
  const times = { output, startedAt: 1, finishedAt: 2 };
  const failed = setTaskRequest("w", {
    ...base,
    result: { ...times, outcome: { kind: "start_failed", error: '"x": no such file' } },
  });
  assert.deepEqual(failed.outcome, { case: "startError", value: '"x": no such file' });
  assert.equal(failed.termination, Termination.UNSPECIFIED);
  const abandoned = setTaskRequest("w", {
    ...base,
    result: { ...times, outcome: { kind: "abandoned", reason: "the worker restarted" } },
  });
  assert.deepEqual(abandoned.outcome, { case: "abandoned", value: "the worker restarted" });
});
