import assert from "node:assert/strict";
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, makeTask, runCli } from "./test_util.ts";

function tasks() {
  return [
    makeTask({ id: "t-0001", state: TaskState.DONE, exitCode: 0 }),
    makeTask({ id: "t-0002", state: TaskState.SCHEDULED, workerId: "w-1", attempt: 1 }),
    makeTask({ id: "t-0003", state: TaskState.DEAD, deadReason: "cancelled" }),
  ];
}

Deno.test("tasks rm removes the finished tasks and says why not for the others, exit 1", async () => {
  const fake = createFakeManager({ tasks: tasks() });
  const r = await runCli(["tasks", "rm", "t-0001", "t-0002", "t-0009", "t-0003"], {
    transport: fake.transport,
  });
  assert.deepEqual(r, {
    code: 1,
    stdout: "t-0001  removed\nt-0003  removed\n",
    stderr: 'schedctl: tasks rm: task "t-0002" is not finished\n' +
      'schedctl: tasks rm: task "t-0009" not found\n',
  });
  assert.deepEqual(fake.calls.map((c) => c.method), Array(4).fill("RemoveTask"));
  assert.deepEqual(fake.tasks.map((t) => t.id), ["t-0002"]);
});

Deno.test("tasks rm of finished tasks only: exit 0; -o json says what happened to each", async () => {
  const fake = createFakeManager({ tasks: tasks() });
  assert.deepEqual(await runCli(["tasks", "rm", "t-0003"], { transport: fake.transport }), {
    code: 0,
    stdout: "t-0003  removed\n",
    stderr: "",
  });
  const json = await runCli(["-o", "json", "tasks", "rm", "t-0001", "t-0002"], {
    transport: fake.transport,
  });
  assert.equal(json.code, 1);
  assert.equal(json.stderr, "");
  assert.deepEqual(JSON.parse(json.stdout), [
    { id: "t-0001", removed: true },
    { id: "t-0002", removed: false, reason: 'task "t-0002" is not finished' },
  ]);
});

Deno.test("tasks rm mistakes are refused naming the value, exit 2, nothing sent", async () => {
  const cases: Array<[string[], string]> = [
    [["rm"], "tasks rm: missing the task ID"],
    [["rm", "t-0001", ""], "tasks rm: a task ID is empty"],
    [["rm", "--all"], 'tasks rm: unknown option "--all"'],
  ];
  for (const [args, message] of cases) {
    const fake = createFakeManager({ tasks: tasks() });
    const r = await runCli(["tasks", ...args], { transport: fake.transport });
    assert.deepEqual(
      r,
      { code: 2, stdout: "", stderr: `schedctl: ${message}; see 'schedctl tasks help'\n` },
      args.join(" "),
    );
    assert.deepEqual(fake.calls, []);
  }
  const help = await runCli(["tasks", "help"]);
  assert.match(help.stdout, /\n {2}rm ID\.\.\.\n {6}Remove finished \(done or dead\) tasks/);
  const top = await runCli(["help"]);
  assert.match(top.stdout, /\n {2}tasks rm ID\.\.\. +remove finished tasks\n/);
});
