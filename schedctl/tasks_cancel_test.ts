import assert from "node:assert/strict";
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, makeTask, runCli } from "./test_util.ts";

function tasks() {
  return [
    makeTask({ id: "t-0001" }),
    makeTask({ id: "t-0002", state: TaskState.SCHEDULED, workerId: "w-1", attempt: 1 }),
    makeTask({ id: "t-0003", state: TaskState.DONE, workerId: "w-1", attempt: 1, exitCode: 3 }),
    makeTask({ id: "t-0004", state: TaskState.DEAD, deadReason: "no eligible worker" }),
    makeTask({ id: "t-0005", state: TaskState.DONE, exitCode: 137, signal: "SIGKILL" }),
  ];
}

Deno.test("tasks cancel prints each task's state after the request and exits 0", async () => {
  const fake = createFakeManager({ tasks: tasks() });
  const r = await runCli(["tasks", "cancel", "t-0001", "t-0002", "t-0004"], {
    transport: fake.transport,
  });
  assert.deepEqual(r, {
    code: 0,
    stdout: `t-0001  dead (cancelled)
t-0002  cancelling
t-0004  already dead (no eligible worker)
`,
    stderr: "",
  });
  assert.deepEqual(fake.calls.map((c) => [c.method, (c.request as { ids: string[] }).ids]), [
    ["CancelTasks", ["t-0001", "t-0002", "t-0004"]],
  ]);
});

Deno.test("tasks cancel of a task already done says which and exits 1", async () => {
  const fake = createFakeManager({ tasks: tasks() });
  const r = await runCli(["tasks", "cancel", "t-0002", "t-0003", "t-0005", "t-0002"], {
    transport: fake.transport,
  });
  assert.deepEqual(r, {
    code: 1,
    stdout: `t-0002  cancelling
t-0003  already done (exit code 3): not cancelled
t-0005  already done (ended by SIGKILL): not cancelled
`,
    stderr: "schedctl: 2 tasks were not cancelled (already done): t-0003, t-0005\n",
  });
  assert.deepEqual((fake.calls[0].request as { ids: string[] }).ids, [
    "t-0002",
    "t-0003",
    "t-0005",
  ]);
});

Deno.test("-o json tasks cancel prints the Tasks", async () => {
  const fake = createFakeManager({ tasks: tasks() });
  const r = await runCli(["-o", "json", "tasks", "cancel", "t-0001", "t-0003"], {
    transport: fake.transport,
  });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "schedctl: 1 task was not cancelled (already done): t-0003\n");
  const printed = JSON.parse(r.stdout);
  assert.deepEqual(
    printed.map((t: Record<string, unknown>) => [t.id, t.state, t.deadReason, t.cancelRequestedAt]),
    [
      ["t-0001", "TASK_STATE_DEAD", "cancelled", "2025-01-02T12:00:00Z"],
      ["t-0003", "TASK_STATE_DONE", "", undefined],
    ],
  );
});

Deno.test("tasks cancel with an unknown id: not found naming it, exit 1, nothing cancelled", async () => {
  const fake = createFakeManager({ tasks: tasks() });
  const r = await runCli(["tasks", "cancel", "t-0001", "nope"], { transport: fake.transport });
  assert.deepEqual(r, { code: 1, stdout: "", stderr: `schedctl: task "nope" not found\n` });
  assert.equal(fake.tasks[0].state, TaskState.PENDING);
});

Deno.test("tasks cancel usage mistakes exit 2 and send nothing", async () => {
  const cases: Array<[string[], string]> = [
    [["tasks", "cancel"], "tasks cancel: missing the task ID"],
    [["tasks", "cancel", "a", ""], "tasks cancel: a task ID is empty"],
    [["tasks", "cancel", "--all"], `tasks cancel: unknown option "--all"`],
  ];
  for (const [argv, message] of cases) {
    const fake = createFakeManager();
    const r = await runCli(argv, { transport: fake.transport });
    assert.deepEqual(
      r,
      { code: 2, stdout: "", stderr: `schedctl: ${message}; see 'schedctl tasks help'\n` },
      argv.join(" "),
    );
    assert.deepEqual(fake.calls, []);
  }
});
