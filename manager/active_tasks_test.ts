import assert from "node:assert/strict";
import { ActiveTasks } from "./active_tasks.ts";
import type { TaskRecord } from "../shared/task.ts";

const GiB = 1024 ** 3;

function task(id: string, extra: Partial<TaskRecord>): TaskRecord {
  return {
    id,
    cmd: "x",
    params: [],
    state: "pending",
    attempt: 0,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    createdAt: 0,
    ...extra,
  };
}

function put(active: ActiveTasks, t: TaskRecord): void {
  active.set(t.id, { value: t, revision: 1n });
}

Deno.test("usage counts every unfinished placed attempt, by worker", () => {
  const active = new ActiveTasks();
  put(active, task("1", { state: "scheduled", workerId: "a", attempt: 1, cpu: 1.5 }));
  put(active, task("2", { state: "pending", workerId: "a", attempt: 1, memoryBytes: GiB }));
  put(active, task("3", { state: "done", workerId: "a", attempt: 1, cpu: 2 }));
  put(active, task("4", { state: "pending", attempt: 0, cpu: 2 }));
  assert.deepEqual(active.usageOf("a"), { cpu: 1.5, memoryBytes: GiB, slots: 2 });
  assert.deepEqual(active.usageOf("b"), { cpu: 0, memoryBytes: 0, slots: 0 });
  assert.deepEqual([...active.takeUsageChanges()], ["a"]);
  assert.deepEqual([...active.takeUsageChanges()], [], "changes are taken once");
});

Deno.test("a task's charge follows it when it changes worker, and leaves with it", () => {
  const active = new ActiveTasks();
  put(active, task("1", { state: "pending", workerId: "a", attempt: 1, cpu: 1 }));
  put(active, task("2", { state: "scheduled", workerId: "a", attempt: 1, cpu: 0.1 }));
  active.takeUsageChanges();
  put(active, task("1", { state: "pending", workerId: "b", attempt: 2, cpu: 1 }));
  assert.deepEqual(active.usageOf("a"), { cpu: 0.1, memoryBytes: 0, slots: 1 });
  assert.deepEqual(active.usageOf("b"), { cpu: 1, memoryBytes: 0, slots: 1 });
  assert.deepEqual([...active.takeUsageChanges()].sort(), ["a", "b"]);
  active.delete("2");
  active.delete("1");
  active.delete("1"); // twice: nothing more is taken back
  assert.deepEqual(active.usageOf("a"), { cpu: 0, memoryBytes: 0, slots: 0 }, "no float residue");
  assert.deepEqual(active.usageOf("b"), { cpu: 0, memoryBytes: 0, slots: 0 });
  assert.equal(active.size, 0);
});

Deno.test("the queue is the pending tasks no worker holds, kept as they change", () => {
  const active = new ActiveTasks();
  put(active, task("1", {}));
  put(active, task("2", { workerId: "a", attempt: 1 }));
  put(active, task("3", { state: "scheduled", workerId: "a", attempt: 1 }));
  put(active, task("4", { retryAt: 5, attempt: 1 }));
  assert.deepEqual([...active.queue()].map((t) => t.id), ["1", "4"]);
  assert.equal(active.waitingCount, 2);
  put(active, task("1", { workerId: "b", attempt: 1 }));
  active.delete("4");
  put(active, task("2", { attempt: 1 })); // taken back from its worker
  assert.deepEqual([...active.queue()].map((t) => t.id), ["2"]);
  assert.equal(active.waitingCount, 1);
});

Deno.test("the queue reads in placing order, and stays in order as tasks come and go", () => {
  const active = new ActiveTasks();
  put(active, task("c", { createdAt: 2 }));
  put(active, task("a", { createdAt: 2 }));
  put(active, task("old", { createdAt: 1 }));
  put(active, task("urgent", { createdAt: 9, priority: 5 }));
  const ids = () => [...active.queue()].map((t) => t.id);
  assert.deepEqual(ids(), ["urgent", "old", "a", "c"], "priority, then age, then id");
  put(active, task("urgent", { createdAt: 9, priority: 5, workerId: "w", attempt: 1 }));
  active.delete("a");
  assert.deepEqual(ids(), ["old", "c"], "placed and gone ones are left out");
  put(active, task("b", { createdAt: 2 }));
  put(active, task("urgent", { createdAt: 9, priority: 5, attempt: 1, retryAt: 20 }));
  assert.deepEqual(ids(), ["urgent", "old", "b", "c"], "newcomers and returns take their place");
  put(active, task("b", { createdAt: 2, attempt: 0, placement: "changed" } as Partial<TaskRecord>));
  assert.deepEqual(
    ids(),
    ["urgent", "old", "b", "c"],
    "a waiting task's new record keeps its place",
  );
});
