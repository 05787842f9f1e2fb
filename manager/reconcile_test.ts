import assert from "node:assert/strict";
import type { TaskRecord } from "../shared/task.ts";
import { planReconcile } from "./reconcile.ts";

const task = (id: string, extra: Partial<TaskRecord> = {}): TaskRecord => ({
  id,
  cmd: "true",
  params: [],
  state: "scheduled",
  workerId: "w1",
  attempt: 1,
  stdout: "",
  stderr: "",
  stdoutTruncated: false,
  stderrTruncated: false,
  createdAt: 0,
  ...extra,
});

Deno.test("a worker that runs what it was given changes nothing", () => {
  const plan = planReconcile("w1", [task("a"), task("b")], [
    { taskId: "a", attempt: 1 },
  ], [{ taskId: "b", attempt: 1 }]);
  assert.deepEqual(plan, { acknowledge: [], lost: [], cancel: [] });
});

Deno.test("an attempt the worker does not know is lost", () => {
  const plan = planReconcile("w1", [task("a"), task("b", { attempt: 2 })], [
    { taskId: "b", attempt: 1 },
  ], []);
  assert.deepEqual(plan.lost, [{ taskId: "a", attempt: 1 }, { taskId: "b", attempt: 2 }]);
  assert.deepEqual(plan.cancel, [{ taskId: "b", attempt: 1 }], "the old attempt is stopped");
});

Deno.test("a running attempt whose ack was lost is acknowledged", () => {
  const plan = planReconcile("w1", [task("a", { state: "pending" })], [
    { taskId: "a", attempt: 1 },
  ], []);
  assert.deepEqual(plan.acknowledge, [{ taskId: "a", attempt: 1 }]);
  assert.deepEqual(plan.lost, []);
});

Deno.test("what the worker runs for others, or for finished tasks, is cancelled", () => {
  const plan = planReconcile("w1", [task("mine"), task("theirs", { workerId: "w2" })], [
    { taskId: "mine", attempt: 1 },
    { taskId: "theirs", attempt: 1 },
    { taskId: "finished", attempt: 3 },
  ], []);
  assert.deepEqual(plan.cancel, [
    { taskId: "theirs", attempt: 1 },
    { taskId: "finished", attempt: 3 },
  ]);
});

Deno.test("a cancel asked for while the worker was away is asked again", () => {
  const plan = planReconcile("w1", [task("a", { cancelRequestedAt: 5 })], [
    { taskId: "a", attempt: 1 },
  ], []);
  assert.deepEqual(plan.cancel, [{ taskId: "a", attempt: 1 }]);
});
